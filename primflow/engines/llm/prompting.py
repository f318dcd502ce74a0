"""Prompt token ids from (system prompt, user content), in segments (see model.py).

Invariants: ``opening(...) + closing(...)`` for a content split in two equals the
segments of the whole content except at the split point itself, where the two halves
are tokenized separately (templates split at a placeholder boundary, usually a newline,
where the tokenizer splits anyway). A prompt that leaves no room in the context for one
generated token is refused with its size and the limit.
"""

from __future__ import annotations

from primflow.engines.llm.model import ChatFrame, LlamaModel


class PromptBuilder:
    def __init__(self, model: LlamaModel, max_tokens: int) -> None:
        self.model = model
        self.max_tokens = max_tokens
        self._frames: dict[str | None, tuple[list[int], list[int]]] = {}

    def opening(self, system: str | None, content: str, is_closed: bool) -> list[int]:
        """Chat header + content (+ footer when the prompt is complete)."""
        header, footer = self._frame_tokens(system)
        tokens = header + self._content(content)
        if is_closed:
            tokens += footer
        self._check_size(len(tokens))
        return tokens

    def closing(self, system: str | None, content: str, num_tokens_before: int) -> list[int]:
        """The rest of the content + chat footer, appended to an opened prompt."""
        tokens = self._content(content) + self._frame_tokens(system)[1]
        self._check_size(num_tokens_before + len(tokens))
        return tokens

    def _content(self, content: str) -> list[int]:
        return self.model.tokenize(content, parse_special=False) if content else []

    def _frame_tokens(self, system: str | None) -> tuple[list[int], list[int]]:
        if system not in self._frames:
            frame: ChatFrame = self.model.chat.frame(system)
            header = self.model.tokenize(frame.header, parse_special=True, add_bos=True)
            footer = self.model.tokenize(frame.footer, parse_special=True)
            self._frames[system] = (header, footer)
        header, footer = self._frames[system]
        return list(header), list(footer)

    def _check_size(self, num_tokens: int) -> None:
        if num_tokens > self.max_tokens:
            raise ValueError(
                f"the prompt has {num_tokens} tokens but the context holds at most "
                f"{self.max_tokens} prompt tokens (n_ctx {self.max_tokens + 1})"
            )
