"""Which KV cells are in use, and which token prefixes can be reused instead of recomputed.

Pure bookkeeping (no llama calls); the scheduler decides, the engine thread applies.
Invariants:

- ``KvLedger`` mirrors llama.cpp's unified KV cache: a sequence's cells are a list of
  references to blocks; ``share`` (``llama_memory_seq_cp``) makes the destination
  reference the source's first cells instead of new ones, so a document shared by 8
  requests is counted (and stored) once. A block's cells stay used while any sequence
  references them.
- ``PrefixCache`` keeps finished sequences' KV slots as reusable prefixes, least
  recently used first out. Entries are engine-owned cache, not query state: they are
  evicted whenever a live request needs the slot or the cells.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class KvLedger:
    """Counts used KV cells per sequence slot, with prefix sharing."""

    def __init__(self) -> None:
        self._refs: dict[int, list[list[int]]] = {}  # slot -> [[block_id, num_cells], ...]
        self._own_block: dict[int, int] = {}  # slot -> the block it appends to
        self._next_block = 0

    def extend(self, slot: int, num_cells: int) -> None:
        """``slot`` computed ``num_cells`` more tokens."""
        refs = self._refs.setdefault(slot, [])
        own = self._own_block.get(slot)
        if refs and refs[-1][0] == own:
            refs[-1][1] += num_cells
            return
        self._own_block[slot] = self._next_block
        refs.append([self._next_block, num_cells])
        self._next_block += 1

    def share(self, src: int, dst: int, num_cells: int) -> None:
        """``dst`` (empty) now holds the first ``num_cells`` cells of ``src``."""
        taken: list[list[int]] = []
        remaining = num_cells
        for block, length in self._refs.get(src, []):
            if remaining <= 0:
                break
            taken.append([block, min(length, remaining)])
            remaining -= length
        self._refs[dst] = taken
        self._own_block.pop(dst, None)

    def truncate(self, slot: int, num_cells: int) -> None:
        """``slot`` keeps only its first ``num_cells`` cells."""
        kept: list[list[int]] = []
        remaining = num_cells
        for block, length in self._refs.get(slot, []):
            if remaining <= 0:
                break
            kept.append([block, min(length, remaining)])
            remaining -= length
        self._refs[slot] = kept
        self._own_block.pop(slot, None)  # appending again would start a new block

    def drop(self, slot: int) -> None:
        self._refs.pop(slot, None)
        self._own_block.pop(slot, None)

    def num_used_cells(self) -> int:
        longest: dict[int, int] = {}
        for refs in self._refs.values():
            for block, length in refs:
                longest[block] = max(longest.get(block, 0), length)
        return sum(longest.values())

    def num_cells(self, slot: int) -> int:
        return sum(length for _, length in self._refs.get(slot, []))


@dataclass(slots=True)
class CachedPrefix:
    slot: int
    tokens: list[int]  # exactly the tokens whose KV the slot holds
    query_id: str
    last_used_s: float


@dataclass(frozen=True, slots=True)
class PrefixMatch:
    slot: int
    num_tokens: int


class PrefixCache:
    """Finished sequences kept as reusable prefixes, in least-recently-used order."""

    def __init__(self) -> None:
        self._entries: OrderedDict[int, CachedPrefix] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, slot: int) -> bool:
        return slot in self._entries

    def add(self, slot: int, tokens: list[int], query_id: str, now_s: float) -> None:
        self._entries[slot] = CachedPrefix(slot, tokens, query_id, now_s)

    def entries(self) -> Iterable[CachedPrefix]:
        return self._entries.values()

    def touch(self, slot: int, now_s: float) -> None:
        if slot in self._entries:
            self._entries[slot].last_used_s = now_s
            self._entries.move_to_end(slot)

    def pop_lru(self, keep: AbstractSet[int] = frozenset()) -> int | None:
        """Evict the least recently used entry not in ``keep``; its slot, or None."""
        for slot in self._entries:
            if slot not in keep:
                del self._entries[slot]
                return slot
        return None

    def remove(self, slot: int) -> None:
        self._entries.pop(slot, None)

    def slots_of_query(self, query_id: str) -> list[int]:
        return [e.slot for e in self._entries.values() if e.query_id == query_id]


def best_match(
    tokens: Sequence[int], candidates: Iterable[tuple[int, Sequence[int]]]
) -> PrefixMatch:
    """The candidate (slot, computed tokens) sharing the longest prefix with ``tokens``."""
    best = PrefixMatch(slot=-1, num_tokens=0)
    for slot, held in candidates:
        length = common_prefix_len(tokens, held)
        if length > best.num_tokens:
            best = PrefixMatch(slot, length)
    return best
