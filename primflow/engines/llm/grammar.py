"""GBNF grammars that make a decode's structure certain (tiny models write malformed lists).

A small model asked for "a JSON list of 3 queries" writes lines, junk or half a list.
A grammar makes the structure certain (not the content). Invariants:

- ``json_list`` / ``json_object`` grammars allow exactly ``num_items`` string items,
  each at most ``max_item_chars`` characters, so the structure always closes.
- The item bound comes from ``max_tokens``: even at one character per token the whole
  answer fits, so the list is never cut before it closes.
- A JSON schema is turned into GBNF by llama-cpp-python's converter.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from primflow.graph.ops import DecodeParser

MAX_ITEM_CHARS = 96
MIN_ITEM_CHARS = 4
MAX_KEY_CHARS = 24
_CHAR = r'[^"\\\x00-\x1f\x7f]'
# Items start with a letter or digit: a tiny model otherwise fills the structure with
# punctuation (seen: `", "` or `]  # 3 queries` as items).
_FIRST_CHAR = r"[a-zA-Z0-9\u00C0-\uFFFF]"


def item_char_budget(max_tokens: int, num_items: int, max_item_chars: int = MAX_ITEM_CHARS) -> int:
    """Longest item that still lets ``num_items`` items close within ``max_tokens``.

    Worst case one token per character: ``[`` + per item 2 quotes and ", " + ``]`` + the
    end-of-generation token.
    """
    overhead = 2 + 4 * num_items
    budget = min(max_item_chars, (max_tokens - overhead) // max(num_items, 1))
    if budget < MIN_ITEM_CHARS:
        raise ValueError(
            f"max_tokens={max_tokens} is too small for {num_items} structured items "
            f"(needs at least {overhead + MIN_ITEM_CHARS * num_items})"
        )
    return budget


def json_list_grammar(num_items: int, max_item_chars: int) -> str:
    """A JSON list of exactly ``num_items`` non-empty strings."""
    items = " ".join(["item"] + ['", " item'] * (num_items - 1))
    return (
        f'root ::= "[" {items} "]"\n'
        f'item ::= "\\"" first char{{0,{max_item_chars - 1}}} "\\""\n'
        f"first ::= {_FIRST_CHAR}\n"
        f"char ::= {_CHAR}\n"
    )


def json_object_grammar(num_items: int, max_item_chars: int) -> str:
    """A flat JSON object of exactly ``num_items`` string fields (short word keys)."""
    fields = " ".join(["field"] + ['", " field'] * (num_items - 1))
    return (
        f'root ::= "{{" {fields} "}}"\n'
        'field ::= "\\"" key "\\": " value\n'
        f"key ::= [a-zA-Z_] [a-zA-Z0-9_]{{0,{MAX_KEY_CHARS - 1}}}\n"
        f'value ::= "\\"" first char{{0,{max_item_chars - 1}}} "\\""\n'
        f"first ::= {_FIRST_CHAR}\n"
        f"char ::= {_CHAR}\n"
    )


def schema_grammar(schema: Mapping[str, Any] | str) -> str:
    """GBNF for a JSON schema (llama-cpp-python's converter)."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    text = schema if isinstance(schema, str) else json.dumps(schema)
    try:
        return str(json_schema_to_gbnf(text))
    except Exception as err:
        raise ValueError(f"json_schema cannot be turned into a grammar: {err}") from err


def choice_grammar(choices: Sequence[str]) -> str:
    """Exactly one of ``choices`` (a constrained decision: the model cannot answer
    anything else, so no free text is parsed afterwards)."""
    options = [str(c) for c in choices]
    if not options or any(not c for c in options):
        raise ValueError(f"choices must be non-empty strings, got {options!r}")
    return "root ::= " + " | ".join(json.dumps(c) for c in options) + "\n"


def decode_grammar(params: Mapping[str, Any], max_tokens: int) -> str | None:
    """The grammar a decode node's params ask for, or None.

    ``choices`` (a constrained decision) wins, then a raw GBNF ``grammar``, then
    ``json_schema``; otherwise a ``json_list``/``json_object`` parser with
    ``num_items`` is constrained unless ``constrain`` is false.
    """
    choices = params.get("choices")
    if choices:
        return choice_grammar(choices)
    grammar = params.get("grammar")
    if grammar:
        return str(grammar)
    schema = params.get("json_schema")
    if schema:
        return schema_grammar(schema)
    parser = params.get("parser")
    num_items = params.get("num_items")
    if not parser or not num_items or not params.get("constrain", True):
        return None
    num_items = int(num_items)
    if num_items < 1:
        raise ValueError(f"num_items must be >= 1, got {num_items}")
    max_item_chars = int(params.get("max_item_chars", MAX_ITEM_CHARS))
    if parser == DecodeParser.JSON_LIST:
        return json_list_grammar(num_items, item_char_budget(max_tokens, num_items, max_item_chars))
    if parser == DecodeParser.JSON_OBJECT:
        # Keys take up to 24 characters plus quotes, colon and space.
        key_tokens = num_items * (MAX_KEY_CHARS + 4)
        max_chars = item_char_budget(max_tokens - key_tokens, num_items, max_item_chars)
        return json_object_grammar(num_items, max_chars)
    return None
