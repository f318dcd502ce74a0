"""The embedded sentence embedder (all-MiniLM-L6-v2 int8 on onnxruntime)."""

from primflow.engines.embedder.encoder import DIM, MiniLMEncoder, shared_encoder
from primflow.engines.embedder.engine import EmbedderEngine

__all__ = ["DIM", "EmbedderEngine", "MiniLMEncoder", "shared_encoder"]
