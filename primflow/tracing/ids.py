"""Which running query an engine request belongs to.

Hooks see a query under the caller's id (``on_query_start``, ``on_node_done``) but an
engine request under the id the engines see, which is the caller's id, or
``<id>~<n>`` when the caller reused an id (``runtime/runtime.py``). ``QueryIds`` keeps
the running queries' ids and maps an engine id back to its query: the exact id wins,
then the running query whose id it extends by ``~<n>``.
"""

from __future__ import annotations


class QueryIds:
    def __init__(self) -> None:
        self._running: set[str] = set()
        self._by_engine_id: dict[str, str] = {}

    def start(self, query_id: str) -> None:
        self._running.add(query_id)

    def end(self, query_id: str) -> None:
        self._running.discard(query_id)
        for engine_id in [e for e, q in self._by_engine_id.items() if q == query_id]:
            del self._by_engine_id[engine_id]

    def query_of(self, engine_id: str) -> str | None:
        """The running query whose requests carry ``engine_id``; None if none does."""
        known = self._by_engine_id.get(engine_id)
        if known is not None:
            return known
        if engine_id in self._running:
            found: str | None = engine_id
        else:
            base, sep, suffix = engine_id.rpartition("~")
            found = base if sep and suffix.isdigit() and base in self._running else None
        if found is not None:
            self._by_engine_id[engine_id] = found
        return found
