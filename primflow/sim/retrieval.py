"""Simulated retrieval-side engines whose costs and outputs follow the real ones closer.

- ``SimEmbedder``: a batch costs its profile's ``per_token_s`` for the texts' tokens
  too. The runtime sizes only prompts in tokens (``EngineRequest.num_tokens`` is 0 for
  embeddings), so the bare fake charges items only; a measured embedder's cost is mostly
  per token (``primflow profile`` fits both). Tokens are estimated from characters, as
  the runtime estimates prompts.
- ``SimWebSearch``: results carry ``snippet_chars`` characters of text each (0: the
  bare fake's short title), so the prompts built from them are as long as with a real
  search backend's snippets.

Invariant: outputs stay deterministic functions of the request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from primflow.engines.base import EngineRequest, Outputs
from primflow.engines.profile import LatencyProfile
from primflow.graph import ops
from primflow.runtime.plan import CHARS_PER_TOKEN
from primflow.testing.fakes import FakeEmbedder, FakeWebSearch
from primflow.values import Chunk, Hit

FILLER = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "


def _num_text_tokens(request: EngineRequest) -> int:
    items = request.inputs.get(ops.ITEMS)
    if items is None:
        return 0
    values = [items] if isinstance(items, str | Chunk | Hit) else list(items)
    num_chars = 0
    for value in values:
        if isinstance(value, Hit):
            num_chars += len(value.chunk.text)
        elif isinstance(value, Chunk):
            num_chars += len(value.text)
        else:
            num_chars += len(str(value))
    return num_chars // CHARS_PER_TOKEN


class SimEmbedder(FakeEmbedder):
    """The fake embedder, charged per token of its texts as well (module docstring)."""

    def batch_latency_s(self, requests: Sequence[EngineRequest]) -> float:
        num_items = sum(r.num_items for r in requests)
        num_tokens = sum(r.num_tokens or _num_text_tokens(r) for r in requests)
        return self.profile.latency_s(num_items, num_tokens)


class SimWebSearch(FakeWebSearch):
    """The fake web search with snippets of ``snippet_chars`` characters."""

    def __init__(
        self,
        name: str,
        profile: LatencyProfile | None = None,
        *,
        snippet_chars: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, profile, **kwargs)
        if snippet_chars < 0:
            raise ValueError(f"snippet length must be >= 0 characters, got {snippet_chars}")
        self.snippet_chars = snippet_chars

    def compute(self, request: EngineRequest) -> Outputs:
        outputs = super().compute(request)
        if self.snippet_chars == 0:
            return outputs
        hits = [
            Hit(
                Chunk(_padded(h.chunk.text, self.snippet_chars), h.chunk.source, h.chunk.chunk_id),
                h.score,
            )
            for h in outputs[ops.HITS]
        ]
        return {ops.HITS: hits}


def _padded(text: str, num_chars: int) -> str:
    filler = FILLER * (1 + num_chars // len(FILLER))
    return (text + " " + filler)[:num_chars] if len(text) < num_chars else text
