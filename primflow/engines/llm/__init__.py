"""The LLM engine on llama.cpp's low-level API (continuous batching, prefix caching,
partial prefill, partial decode). See ``engine.LlamaEngine`` and docs/results/llm-engine.md."""

from primflow.engines.llm.config import LlamaConfig
from primflow.engines.llm.engine import LlamaEngine
from primflow.engines.llm.sequence import LLMState

__all__ = ["LLMState", "LlamaConfig", "LlamaEngine"]
