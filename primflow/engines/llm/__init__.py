"""The LLM engine on llama.cpp's low-level API (continuous batching, prefix caching,
partial prefill, partial decode). See ``engine.LlamaEngine`` and docs/results/llm-engine.md.

The names here load lazily (PEP 562): the remote LLM engine reuses this package's pure
modules (``parsers``, ``output``, ``grammar``), and importing them must not import
llama-cpp-python, which a remote-only install does not have.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from primflow.engines.llm.config import LlamaConfig
    from primflow.engines.llm.engine import LlamaEngine
    from primflow.engines.llm.sequence import LLMState

__all__ = ["LLMState", "LlamaConfig", "LlamaEngine"]


def __getattr__(name: str) -> Any:
    if name == "LlamaConfig":
        from primflow.engines.llm.config import LlamaConfig

        return LlamaConfig
    if name == "LlamaEngine":
        from primflow.engines.llm.engine import LlamaEngine

        return LlamaEngine
    if name == "LLMState":
        from primflow.engines.llm.sequence import LLMState

        return LLMState
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
