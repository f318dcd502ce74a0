"""Incremental parsers that split a streaming LLM answer into items (partial decoding).

A parser is fed the decoded text in whatever pieces the tokenizer produces and returns
each item the moment it is complete, while generation goes on. Invariants:

- Items come out in order and exactly once; how the text was cut into pieces never
  changes the items (a piece may end anywhere, even inside an escape sequence).
- ``finish()`` flushes what the end of the text completes (e.g. a last line with no
  newline); after it the parser accepts nothing more.
- ``is_done`` turns true once the structure is closed (``]`` / ``}``) or ``num_items``
  items were emitted; the engine then stops generating.
- Small models do not always write clean JSON: the JSON parsers fall back
  to line parsing when the answer starts with lines instead of ``[`` / ``{``.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod

from primflow.graph.ops import DecodeParser

_BULLET = re.compile(r"^\s*(?:[-*•+]\s+|\(?#?\d{1,3}[.):]\s*|#?\d{1,3}\s+-\s+)")
_FENCE = re.compile(r"^\s*(```\w*|json|\[|\]|\{|\})\s*,?\s*$", re.IGNORECASE)
_KEY_PREFIX = re.compile(r"^\s*\"?[\w \-]{1,40}\"?\s*:\s*")


class ItemParser(ABC):
    """Turns streamed text into complete items."""

    def __init__(self, num_items: int | None = None) -> None:
        self.num_items = num_items
        self.items: list[str] = []
        self._is_closed = False
        self._is_finished = False

    @property
    def is_done(self) -> bool:
        is_full = self.num_items is not None and len(self.items) >= self.num_items
        return self._is_closed or is_full

    def feed(self, text: str) -> list[str]:
        """Consume ``text``; return the items it completed."""
        if self._is_finished:
            raise RuntimeError("parser fed after finish()")
        if self.is_done:
            return []
        return self._keep(self._feed(text))

    def finish(self) -> list[str]:
        """The text ended: return the items its end completes."""
        if self._is_finished:
            return []
        self._is_finished = True
        if self.is_done:
            return []
        return self._keep(self._finish())

    def _keep(self, new_items: list[str]) -> list[str]:
        if self.num_items is not None:
            new_items = new_items[: self.num_items - len(self.items)]
        self.items.extend(new_items)
        return new_items

    @abstractmethod
    def _feed(self, text: str) -> list[str]: ...

    @abstractmethod
    def _finish(self) -> list[str]: ...


def clean_line(line: str, strip_keys: bool = False) -> str:
    """A line without list numbering, bullets, JSON punctuation and wrapping quotes."""
    if _FENCE.match(line) or line.rstrip().endswith(":"):  # fences, "Here are...:" intros
        return ""
    text = _BULLET.sub("", line, count=1).strip()
    if strip_keys:
        text = _KEY_PREFIX.sub("", text, count=1)
    text = text.rstrip(",").strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


class LinesParser(ItemParser):
    """Non-empty lines, numbering and bullets stripped; a line is complete at ``\\n``."""

    def __init__(self, num_items: int | None = None, strip_keys: bool = False) -> None:
        super().__init__(num_items)
        self._line = ""
        self._strip_keys = strip_keys

    def _feed(self, text: str) -> list[str]:
        *complete, self._line = (self._line + text).split("\n")
        return [item for line in complete if (item := clean_line(line, self._strip_keys))]

    def _finish(self) -> list[str]:
        item = clean_line(self._line, self._strip_keys)
        self._line = ""
        return [item] if item else []


class _JsonScanner:
    """Character-level scanner for one flat JSON container (list or object).

    Emits values; for objects, only values (keys are skipped). Strings are decoded with
    ``json.loads`` once their closing quote is seen; other values (numbers, nested
    containers) are emitted as their raw JSON text.
    """

    def __init__(self, is_object: bool) -> None:
        self.is_object = is_object
        self.is_closed = False
        self._raw: list[str] = []
        self._in_string = False
        self._is_escaped = False
        self._depth = 0  # nesting inside a non-string value
        self._in_value = False
        self._expect_key = is_object

    def feed(self, text: str) -> list[str]:
        items: list[str] = []
        for char in text:
            if self.is_closed:
                break
            item = self._step(char)
            if item is not None:
                items.append(item)
        return items

    def _step(self, char: str) -> str | None:
        if self._in_string:
            return self._string_char(char)
        if self._in_value:
            return self._value_char(char)
        if char == '"':
            self._in_string = True
            self._raw = []
        elif char in "]}":
            self.is_closed = True
        elif char == ":" and self.is_object:
            self._expect_key = False
        elif char == ",":
            self._expect_key = self.is_object
        elif not char.isspace():
            self._in_value = True
            self._raw = [char]
            self._depth = 1 if char in "[{" else 0
        return None

    def _string_char(self, char: str) -> str | None:
        if self._is_escaped:
            self._is_escaped = False
        elif char == "\\":
            self._is_escaped = True
        elif char == '"':
            self._in_string = False
            if self._in_value:  # a string nested in a raw value
                self._raw.append(char)
                return None
            if self._expect_key:
                return None
            return _decode_string("".join(self._raw))
        self._raw.append(char)
        return None

    def _value_char(self, char: str) -> str | None:
        if self._depth == 0 and char in ",]}":
            self._in_value = False
            self._expect_key = self.is_object
            if char != ",":
                self.is_closed = True
            return "".join(self._raw).strip()
        if char == '"':
            self._in_string = True
        elif char in "[{":
            self._depth += 1
        elif char in "]}":
            self._depth -= 1
        self._raw.append(char)
        return None


def _decode_string(raw: str) -> str:
    try:
        value = json.loads(f'"{raw}"')
    except json.JSONDecodeError:
        return raw
    return value if isinstance(value, str) else raw


class JsonParser(ItemParser):
    """Items of a JSON list of strings, or values of a flat JSON object, in order.

    Text before the opening bracket is skipped (a code fence, "Here are..."). If the
    answer turns out to be lines (a complete line with content and no bracket before
    it), the parser switches to :class:`LinesParser` for the whole answer.
    """

    def __init__(self, is_object: bool, num_items: int | None = None) -> None:
        super().__init__(num_items)
        self._opener = "{" if is_object else "["
        self._scanner = _JsonScanner(is_object)
        self._lines = LinesParser(strip_keys=is_object)
        self._mode = "seek"  # seek -> json | lines
        self._num_lines_emitted = 0

    @property
    def is_done(self) -> bool:
        return super().is_done or self._scanner.is_closed

    def _feed(self, text: str) -> list[str]:
        if self._mode == "json":
            return self._scanner.feed(text)
        if self._mode == "seek":
            start = text.find(self._opener)
            line_items = self._lines.feed(text if start < 0 else text[:start])
            if start >= 0 and not line_items:
                self._mode = "json"
                return self._scanner.feed(text[start + 1 :])
            if not line_items:
                return []
            self._mode = "lines"
            if start >= 0:
                line_items += self._lines.feed(text[start:])
            return line_items
        return self._lines.feed(text)

    def _finish(self) -> list[str]:
        if self._mode == "json":
            return []
        return self._lines.finish()


def make_parser(kind: str | DecodeParser, num_items: int | None = None) -> ItemParser:
    """The parser named by a decode node's ``parser`` param."""
    try:
        parser = DecodeParser(kind)
    except ValueError:
        names = ", ".join(p.value for p in DecodeParser)
        raise ValueError(f"unknown decode parser {kind!r}; expected one of {names}") from None
    if parser is DecodeParser.JSON_LIST:
        return JsonParser(is_object=False, num_items=num_items)
    if parser is DecodeParser.JSON_OBJECT:
        return JsonParser(is_object=True, num_items=num_items)
    return LinesParser(num_items=num_items)
