"""What crosses the driver/actor boundary: requests, outcome events, stored values.

Invariants:

- A request crosses without its driver-side parts (its future and its ``on_text``
  callback); ``wants_text`` says whether the actor should stream its decoded text back.
- The actor answers a batch with a stream of events, one :class:`Outcome` per request
  (in the order the requests finish, not the batch order) and one :class:`TextPiece`
  per piece of streamed text, each as soon as it happens.
- Large arrays (at least ``LARGE_VALUE_BYTES``) travel as :class:`StoredValue`: the
  actor that made one puts it in Ray's object store and sends the reference, and the
  driver sends that same reference, not the array, to the next actor that reads it.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from primflow.engines.base import EngineHealth, EngineKind
from primflow.engines.profile import LatencyProfile

# Arrays from this size on go through the object store by reference (a question's
# 384-float embedding, 1.5 KiB, stays inline; a document's chunk embeddings do not).
LARGE_VALUE_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class StoredValue:
    """A value in Ray's object store: ``ref`` is its ``ObjectRef``."""

    ref: Any


@dataclass(frozen=True, slots=True)
class EngineDescription:
    """What the driver needs to know of the engine inside an actor, read once."""

    kind: EngineKind
    profile: LatencyProfile
    max_batch_size: int
    max_concurrent_batches: int
    node_id: str
    pid: int


@dataclass(frozen=True, slots=True)
class TextPiece:
    """Decoded text of request ``index`` of the batch, as it streams."""

    index: int
    text: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """Request ``index`` of the batch finished: ``outputs``, or ``error`` / cancelled.

    ``error`` is ``(engine, node, reason)`` of the engine's :class:`EngineError` (or
    the repr of another exception); ``health`` is the engine's right after."""

    index: int
    outputs: dict[str, Any] | None
    error: tuple[str, str, str] | None
    is_cancelled: bool
    health: EngineHealth


def is_large(value: Any) -> bool:
    return isinstance(value, np.ndarray) and value.nbytes >= LARGE_VALUE_BYTES


class StoredValues:
    """Driver side: which arrays came from the object store, and under which reference.

    Keyed by the identity of the array the driver got (held weakly), so the same object
    handed to another engine goes there by reference; an array the driver built itself
    (or changed) is not in here and travels inline.
    """

    def __init__(self) -> None:
        self._refs: dict[int, tuple[weakref.ref[Any], Any]] = {}

    def remember(self, value: Any, ref: Any) -> None:
        key = id(value)
        self._refs[key] = (weakref.ref(value, lambda _: self._refs.pop(key, None)), ref)

    def ref_of(self, value: Any) -> Any | None:
        found = self._refs.get(id(value))
        if found is None or found[0]() is not value:
            return None
        return found[1]

    def __len__(self) -> int:
        return len(self._refs)


# One table for every proxy in the driver: the producer and the consumer of a value
# are different engines.
STORED_VALUES = StoredValues()
