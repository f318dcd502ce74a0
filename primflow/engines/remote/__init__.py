"""Engines on unmodified OpenAI-compatible servers (vLLM, SGLang, llama.cpp, Ollama):
an LLM engine (prefix warm-up for partial prefill, streamed partial decode, priority,
constraints, abort), an embedder and a reranker. See docs/guide/remote-engines.md."""

from primflow.engines.remote.dialects import DIALECTS, Dialect, DialectName
from primflow.engines.remote.embed import RemoteEmbedder
from primflow.engines.remote.http import ClientSettings, RemoteClient, RemoteError
from primflow.engines.remote.llm import RemoteLLMEngine, RemoteLLMState
from primflow.engines.remote.profile import RemoteProfile
from primflow.engines.remote.rerank import RemoteReranker

__all__ = [
    "DIALECTS",
    "ClientSettings",
    "Dialect",
    "DialectName",
    "RemoteClient",
    "RemoteEmbedder",
    "RemoteError",
    "RemoteLLMEngine",
    "RemoteLLMState",
    "RemoteProfile",
    "RemoteReranker",
]
