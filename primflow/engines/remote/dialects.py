"""What each OpenAI-compatible server understands beyond the OpenAI API: the dialect table.

A dialect names the request fields a server family accepts for the things primflow
pushes down (scheduling priority, structured output, prefix caching, fixed-length
answers) and where it reports cached prompt tokens. Invariants:

- A field is sent only when the dialect lists it; a plain ``openai`` endpoint gets the
  OpenAI fields alone (an unknown field may be refused there).
- ``can_reuse_prefix`` says whether a warm-up request can leave a prompt prefix in the
  server's cache for the next request to reuse; the split-prefill pass skips the split
  for an engine whose dialect cannot (engines/remote/profile.py).
- ``priority_sign`` turns primflow's rank (remaining critical path, higher first) into
  the server's integer priority: vLLM serves *lower* values first, SGLang (by default)
  higher ones.

What was verified against a real server here: ``llama_cpp_python`` (llama-cpp-python's
``python -m llama_cpp.server``), in tests/remote. The other rows follow the servers'
documented APIs and are checked against a small fake server only.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class DialectName(StrEnum):
    VLLM = "vllm"
    SGLANG = "sglang"
    LLAMA_CPP = "llama_cpp"  # llama.cpp's C++ `llama-server`
    LLAMA_CPP_PYTHON = "llama_cpp_python"  # llama-cpp-python's `python -m llama_cpp.server`
    OLLAMA = "ollama"
    OPENAI = "openai"


class GrammarField(StrEnum):
    """How a JSON constraint is pushed down."""

    NONE = "none"
    RESPONSE_FORMAT = "response_format"  # OpenAI json_schema response format (chat only)
    GUIDED_JSON = "guided_json"  # vLLM's guided decoding field (completions and chat)
    GBNF = "gbnf"  # a llama.cpp GBNF `grammar` string


class ChoiceField(StrEnum):
    """How a constrained choice (a decode's ``choices``: the judge's yes/no) is pushed
    down. A GBNF dialect gets the choice as a ``grammar`` (grammar.py) whatever this says."""

    NONE = "none"  # not constrained: the condition reads the answer's first word
    GUIDED_CHOICE = "guided_choice"  # vLLM: the answer is exactly one of the strings
    REGEX = "regex"  # SGLang: a regex of the alternatives


class SchemaField(StrEnum):
    """How a GBNF server takes a JSON schema, so the server converts it (the client
    needs no llama-cpp-python for the conversion)."""

    NONE = "none"  # converted here (llama-cpp-python's converter) and sent as `grammar`
    JSON_SCHEMA = "json_schema"  # llama.cpp's C++ server: a top-level `json_schema`
    JSON_OBJECT = "json_object"  # llama-cpp-python (chat): response_format json_object + schema


@dataclass(frozen=True, slots=True)
class Dialect:
    name: DialectName
    priority_sign: int  # 0: the server takes no priority field
    can_reuse_prefix: bool
    grammar: GrammarField
    # Field that keeps generating past end-of-sequence (fixed-length answers), or None.
    ignore_eos_field: str | None
    # Whether generation requests take ``top_k`` (not an OpenAI API field).
    has_top_k: bool = False
    # Extra fields every generation request carries (e.g. llama.cpp's cache_prompt).
    extra_fields: tuple[tuple[str, object], ...] = ()
    # Rerank endpoint path, or None when the server family has none.
    rerank_path: str | None = None
    # GBNF dialects: how a JSON schema goes to the server.
    schema_field: SchemaField = SchemaField.NONE
    # Non-GBNF dialects: how a constrained choice goes to the server.
    choice_field: ChoiceField = ChoiceField.NONE


DIALECTS: dict[DialectName, Dialect] = {
    DialectName.VLLM: Dialect(
        DialectName.VLLM,
        has_top_k=True,
        priority_sign=-1,
        can_reuse_prefix=True,  # automatic prefix caching (on by default in vLLM V1)
        grammar=GrammarField.GUIDED_JSON,
        ignore_eos_field="ignore_eos",
        rerank_path="/v1/rerank",
        choice_field=ChoiceField.GUIDED_CHOICE,
    ),
    DialectName.SGLANG: Dialect(
        DialectName.SGLANG,
        has_top_k=True,
        priority_sign=1,
        can_reuse_prefix=True,  # RadixAttention
        grammar=GrammarField.RESPONSE_FORMAT,
        ignore_eos_field="ignore_eos",
        rerank_path="/v1/rerank",
        choice_field=ChoiceField.REGEX,
    ),
    DialectName.LLAMA_CPP: Dialect(
        DialectName.LLAMA_CPP,
        has_top_k=True,
        priority_sign=0,
        can_reuse_prefix=True,  # cache_prompt: a slot keeps its last prompt's KV
        grammar=GrammarField.GBNF,
        ignore_eos_field="ignore_eos",
        extra_fields=(("cache_prompt", True),),
        rerank_path="/v1/rerank",
        schema_field=SchemaField.JSON_SCHEMA,
    ),
    DialectName.LLAMA_CPP_PYTHON: Dialect(
        DialectName.LLAMA_CPP_PYTHON,
        has_top_k=True,
        priority_sign=0,
        # One context: a request reuses the longest token prefix it shares with the
        # previous request (and with `--cache true`, with older cached prompts).
        can_reuse_prefix=True,
        grammar=GrammarField.GBNF,
        ignore_eos_field=None,  # min_tokens = max_tokens stands in (requests.py)
        schema_field=SchemaField.JSON_OBJECT,
    ),
    DialectName.OLLAMA: Dialect(
        DialectName.OLLAMA,
        priority_sign=0,
        can_reuse_prefix=True,  # a loaded model keeps its last prompt's KV
        grammar=GrammarField.RESPONSE_FORMAT,
        ignore_eos_field=None,
    ),
    DialectName.OPENAI: Dialect(
        DialectName.OPENAI,
        priority_sign=0,
        # Hosted prompt caching starts at 1024 tokens and is not ours to steer: a warm-up
        # would be paid for twice.
        can_reuse_prefix=False,
        grammar=GrammarField.RESPONSE_FORMAT,
        ignore_eos_field=None,
    ),
}


def server_priority(dialect: Dialect, rank_s: float) -> int | None:
    """The server's integer priority for a critical-path rank in seconds (ms units)."""
    if dialect.priority_sign == 0:
        return None
    return dialect.priority_sign * round(rank_s * 1000)
