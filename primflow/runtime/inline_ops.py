"""The ops the graph scheduler runs itself: CONDITION, AGGREGATE and INLINE_FUNCTION (a
user's function declared cheap; INPUT and OUTPUT only move values and live in the graph
scheduler).

An inline function runs on the event loop, so it must be fast: a call that takes longer
than ``SLOW_INLINE_CALL_S`` is logged (once per function) with the advice to drop
``is_cheap`` so it runs on a function engine instead.

Skipped values (``SKIPPED``, from an untaken CONDITION branch):
- CONDITION puts its ``value`` on the taken port and ``SKIPPED`` on the other.
- AGGREGATE ignores skipped parts; it is skipped itself only when every part is
  (the graph scheduler checks that before calling in here).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from primflow.engines.function.call import call_sync, function_of, settings_of
from primflow.graph import ops
from primflow.graph.ir import Node, Op
from primflow.runtime.query_state import SKIPPED
from primflow.values import Chunk, Hit

DEFAULT_PREDICATE = "yes"
DEFAULT_SEPARATOR = "\n\n"
SLOW_INLINE_CALL_S = 0.005  # 5 ms holds every other query on the loop: too long inline

_log = logging.getLogger("primflow.function")
_slow_functions: set[str] = set()


def run_inline(node: Node, values: Mapping[str, Any]) -> dict[str, Any]:
    """Outputs of a CONDITION or AGGREGATE node from its input values."""
    if node.op is Op.CONDITION:
        return run_condition(node, values)
    if node.op is Op.AGGREGATE:
        return {ops.RESULT: run_aggregate(node, values)}
    if node.op is Op.INLINE_FUNCTION:
        return run_inline_function(node, values)
    raise ValueError(f"node {node.name!r}: {node.op} is not an inline op")


def run_inline_function(node: Node, values: Mapping[str, Any]) -> dict[str, Any]:
    """Call a cheap user function here, on the caller's thread (the event loop)."""
    ref = function_of(node.params)
    started_s = time.perf_counter()
    outputs = call_sync(ref, values, settings_of(node.params))
    elapsed_s = time.perf_counter() - started_s
    if elapsed_s > SLOW_INLINE_CALL_S and ref.name not in _slow_functions:
        _slow_functions.add(ref.name)
        _log.warning(
            "inline function %s (node %r) took %.1f ms on the event loop; drop is_cheap "
            "to run it on a function engine",
            ref.name,
            node.name,
            elapsed_s * 1e3,
        )
    return outputs


def run_condition(node: Node, values: Mapping[str, Any]) -> dict[str, Any]:
    is_taken = is_decision_true(values.get(ops.DECISION), node.params)
    value = values.get(ops.VALUE)
    return {
        ops.IF_TRUE: value if is_taken else SKIPPED,
        ops.IF_FALSE: SKIPPED if is_taken else value,
    }


def is_decision_true(decision: Any, params: Mapping[str, Any]) -> bool:
    """A bool decides itself; text is true when it starts with ``params["predicate"]``
    (case-insensitive, ignoring surrounding whitespace, quotes and punctuation)."""
    if isinstance(decision, bool):
        return decision
    if decision is None:
        return False
    predicate = str(params.get("predicate", DEFAULT_PREDICATE)).strip().lower()
    text = str(decision).strip().strip("\"'`*.,:;!").lower()
    return text.startswith(predicate)


def run_aggregate(node: Node, values: Mapping[str, Any]) -> Any:
    parts = [values.get(p.name, SKIPPED) for p in node.inputs]
    present = [v for v in parts if v is not SKIPPED]
    mode = ops.AggregateMode(node.params.get("mode", ops.AggregateMode.CONCAT))
    if mode is ops.AggregateMode.FIRST:
        return next((v for v in present if v is not None), SKIPPED)
    if mode is ops.AggregateMode.ALL:
        return parts[0] if parts and parts[0] is not SKIPPED else None
    if mode is ops.AggregateMode.TOP_K:
        return merge_top_k(present, node.params.get("top_k"))
    if mode is ops.AggregateMode.ZIP_TEXTS:
        separator = str(node.params.get("separator", DEFAULT_SEPARATOR))
        return zip_texts(node.name, present, separator)
    return concat(present)


def zip_texts(name: str, parts: list[Any], separator: str) -> list[str]:
    """Item i = the parts' items i as one text, in part order (see AggregateMode)."""
    lists = [list(p) if isinstance(p, list | tuple) else [p] for p in parts if p is not None]
    lengths = sorted({len(items) for items in lists})
    if len(lengths) > 1:
        raise ValueError(f"aggregate {name!r} (zip_texts): parts have {lengths} items")
    joined = []
    for items in zip(*lists, strict=True):
        texts = [item.text if isinstance(item, Chunk) else str(item) for item in items]
        joined.append(separator.join(t.strip() for t in texts if t.strip()))
    return joined


def concat(parts: list[Any]) -> Any:
    """Join list values in part order; arrays stack by rows; ``None`` parts are dropped."""
    parts = [p for p in parts if p is not None]
    if parts and all(isinstance(p, np.ndarray) for p in parts):
        return np.concatenate(parts, axis=0)
    joined: list[Any] = []
    for part in parts:
        if isinstance(part, list | tuple | np.ndarray):
            joined.extend(part)
        else:
            joined.append(part)
    return joined


def merge_top_k(parts: list[Any], top_k: int | None) -> list[Hit]:
    """Merge hit lists, keep each chunk once at its best score, best first."""
    best: dict[tuple[str, int], Hit] = {}
    for part in parts:
        for hit in part or ():
            key = (hit.chunk.source, hit.chunk.chunk_id)
            if key not in best or hit.score > best[key].score:
                best[key] = hit
    hits = sorted(best.values(), key=lambda h: h.score, reverse=True)
    return hits if top_k is None else hits[: int(top_k)]


def input_value(value: Any, *, is_optional: bool, select: tuple[int, int] | None) -> Any:
    """What a consumer's port receives from a producer's ``value``: None for a skipped
    optional input, the ``select`` slice of a list, else the value itself (a skipped
    required input stays ``SKIPPED``; see :func:`is_skipped`)."""
    if value is SKIPPED:
        return None if is_optional else SKIPPED
    if select is not None and value is not None:
        return value[select[0] : select[1]]
    return value


def is_skipped(op: Op, num_skipped: int, num_inputs: int) -> bool:
    """Whether a node is skipped, given how many required inputs were: an AGGREGATE
    only when every part was (it joins the branches of a CONDITION), others when any."""
    if op is Op.AGGREGATE:
        return 0 < num_skipped == num_inputs
    return num_skipped > 0
