"""Turning a ready node and its input values into an :class:`EngineRequest`.

One place sizes the work (items, prompt tokens) and scopes the LLM request id by
query, so the runtime and the baselines hand engines identical requests and any
difference between schemes comes from scheduling alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from primflow.engines.base import EngineRequest
from primflow.graph.ir import LLM_OPS, PREFILL_OPS, Node
from primflow.runtime.plan import CHARS_PER_TOKEN
from primflow.values import Chunk, Hit


def build_request(
    node: Node,
    values: Mapping[str, Any],
    query_id: str,
    *,
    depth: int = 0,
    priority: float = 0.0,
    query_start_s: float | None = None,
    query_priority: int = 0,
    deadline_s: float | None = None,
    on_text: Callable[[str], None] | None = None,
) -> EngineRequest:
    """The request for ``node`` of query ``query_id`` (the id the engines see)."""
    is_llm = node.op in LLM_OPS
    return EngineRequest(
        query_id=query_id,
        node=node.name,
        op=node.op,
        inputs=values,
        params=node.params,
        num_items=1 if is_llm else num_items(values),
        num_tokens=num_prompt_tokens(node.params, values) if node.op in PREFILL_OPS else 0,
        llm_request_id=f"{query_id}/{node.params.get('request', node.name)}" if is_llm else None,
        depth=depth,
        priority=priority,
        query_start_s=query_start_s,
        query_priority=query_priority,
        deadline_s=deadline_s,
        on_text=on_text,
    )


def num_items(values: Mapping[str, Any]) -> int:
    """Work items of a batchable primitive: the length of its longest list input."""
    sizes = [len(v) for v in values.values() if isinstance(v, list | tuple | np.ndarray)]
    return max(sizes, default=1) or 1


def num_prompt_tokens(params: Mapping[str, Any], values: Mapping[str, Any]) -> int:
    """A cheap estimate of a prompt's tokens (no tokenizer on the scheduling path)."""
    num_chars = len(str(params.get("template", ""))) + sum(_text_size(v) for v in values.values())
    return num_chars // CHARS_PER_TOKEN


def _text_size(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, Hit):
        return len(value.chunk.text)
    if isinstance(value, Chunk):
        return len(value.text)
    if isinstance(value, list | tuple):
        return sum(_text_size(v) for v in value)
    return 0
