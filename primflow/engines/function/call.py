"""Calling a user's function for one FUNCTION node, or for several merged into one call.

Shared by the function engine, the inline path of the graph scheduler (and the
baselines) and the simulator, so a function behaves the same wherever it runs.
Invariants:

- A call passes the node's input values by parameter name plus its settings; a
  parameter with no value (an unbound optional port) keeps its default.
- Whatever the function raises or returns wrongly becomes a :class:`FunctionCallError`
  naming the function (``module:qualname``); the caller names the node and engine.
- A batchable function maps items one to one: every call's result is checked to have
  one entry per item, which is what lets stages and merged calls be split back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from primflow.graph.ops import FunctionRef

Outputs = dict[str, Any]


class FunctionCallError(RuntimeError):
    """A user's function failed or broke its declared contract; names the function."""


def settings_of(params: Mapping[str, Any]) -> dict[str, Any]:
    settings = params.get("settings") or {}
    return dict(settings)


def function_of(params: Mapping[str, Any]) -> FunctionRef:
    ref = params.get("function")
    if not isinstance(ref, FunctionRef):
        raise FunctionCallError(f"params['function'] is {type(ref).__name__}, not a FunctionRef")
    return ref


def raised(ref: FunctionRef, exc: BaseException) -> FunctionCallError:
    return FunctionCallError(f"function {ref.name} raised {type(exc).__name__}: {exc}")


def call_sync(ref: FunctionRef, inputs: Mapping[str, Any], settings: Mapping[str, Any]) -> Outputs:
    """Call a sync function and map its result onto the output ports."""
    try:
        result = ref.fn(**inputs, **settings)
    except Exception as exc:
        raise raised(ref, exc) from exc
    return outputs_of(ref, result, inputs)


async def call_async(
    ref: FunctionRef, inputs: Mapping[str, Any], settings: Mapping[str, Any]
) -> Outputs:
    try:
        result = await ref.fn(**inputs, **settings)
    except Exception as exc:
        raise raised(ref, exc) from exc
    return outputs_of(ref, result, inputs)


def outputs_of(ref: FunctionRef, result: Any, inputs: Mapping[str, Any]) -> Outputs:
    if len(ref.outputs) == 1:
        outputs = {ref.outputs[0]: result}
    elif isinstance(result, tuple) and len(result) == len(ref.outputs):
        outputs = dict(zip(ref.outputs, result, strict=True))
    else:
        raise FunctionCallError(
            f"function {ref.name} returned {type(result).__name__}, not a tuple of "
            f"{len(ref.outputs)} ({', '.join(ref.outputs)})"
        )
    if ref.items_port is not None:
        check_one_to_one(ref, outputs[ref.outputs[0]], num_items(inputs.get(ref.items_port)))
    return outputs


def num_items(value: Any) -> int:
    return len(value) if isinstance(value, list | tuple | np.ndarray) else 0


def check_one_to_one(ref: FunctionRef, result: Any, num_in: int) -> None:
    if not isinstance(result, list | tuple | np.ndarray):
        raise FunctionCallError(
            f"batchable function {ref.name} returned {type(result).__name__}, not a list"
        )
    if len(result) != num_in:
        raise FunctionCallError(
            f"batchable function {ref.name} returned {len(result)} items for {num_in} "
            "(a batchable function maps items one to one)"
        )


def merge_key(params: Mapping[str, Any], inputs: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """Requests with equal keys can be merged into one call of a batchable function:
    the same function and settings and equal broadcast (non-item) inputs. None: the
    request is called on its own (not batchable, or a broadcast value is no plain text)."""
    ref = params.get("function")
    if not isinstance(ref, FunctionRef) or ref.items_port is None:
        return None
    broadcast = []
    for name in sorted(inputs):
        if name == ref.items_port:
            continue
        value = inputs[name]
        if not (value is None or isinstance(value, str | bool)):
            return None
        broadcast.append((name, value))
    settings = settings_of(params)
    try:
        hash(tuple(settings.items()))
    except TypeError:
        return None
    return (id(ref), tuple(sorted(settings.items())), tuple(broadcast))


def merged_inputs(ref: FunctionRef, inputs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The first request's inputs with every request's items joined, in order."""
    assert ref.items_port is not None
    parts = [each[ref.items_port] for each in inputs]
    if all(isinstance(p, np.ndarray) for p in parts):
        items: Any = np.concatenate(parts, axis=0)
    else:
        items = [item for part in parts for item in part]
    return {**inputs[0], ref.items_port: items}


def split_outputs(ref: FunctionRef, outputs: Outputs, sizes: Sequence[int]) -> list[Outputs]:
    """One request's share of a merged call's outputs (its items' slice)."""
    result = outputs[ref.outputs[0]]
    shares: list[Outputs] = []
    start = 0
    for size in sizes:
        part = result[start : start + size]
        shares.append({ref.outputs[0]: part if isinstance(part, np.ndarray) else list(part)})
        start += size
    return shares
