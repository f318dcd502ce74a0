"""The web search engine: WEB_SEARCH (queries: list[str]) -> {"hits"}.

All queries of all requests in a batch go to the backend in one call. Per request, the
hits of its queries are merged (one per document, its best score), best first, at most
``top_k``. A request with bad inputs fails alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from primflow.engines.base import EngineError, EngineKind, EngineRequest
from primflow.engines.placement import CoreBudget
from primflow.engines.profile import LatencyProfile
from primflow.engines.threaded import Outcome, ThreadedEngine
from primflow.engines.vector.common import merge_hits, top_k
from primflow.engines.websearch.backend import SearchBackend
from primflow.graph.ir import Op
from primflow.graph.ops import HITS, QUERIES


class WebSearchEngine(ThreadedEngine):
    kind = EngineKind.WEB_SEARCH

    def __init__(
        self,
        backend: SearchBackend,
        name: str = "web_search",
        profile: LatencyProfile | None = None,
        budget: CoreBudget | None = None,
    ) -> None:
        super().__init__(name, profile, budget)
        self.backend = backend

    def run_batch(self, batch: Sequence[EngineRequest]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        jobs: list[tuple[int, list[str], int]] = []
        for i, request in enumerate(batch):
            try:
                jobs.append((i, self._queries(request), top_k(request, self.name)))
                outcomes.append({})
            except EngineError as err:
                outcomes.append(err)
        all_queries = [q for _, queries, _ in jobs for q in queries]
        max_k = max((k for _, _, k in jobs), default=1)
        per_query = self.backend.search(all_queries, max_k)
        start = 0
        for i, queries, k in jobs:
            outcomes[i] = {HITS: merge_hits(per_query[start : start + len(queries)], k)}
            start += len(queries)
        return outcomes

    def _queries(self, request: EngineRequest) -> list[str]:
        if request.op is not Op.WEB_SEARCH:
            raise EngineError(self.name, request.node, f"cannot run op {request.op}")
        queries = request.inputs.get(QUERIES)
        if isinstance(queries, str):
            queries = [queries]  # one query given as text: accept it
        if not isinstance(queries, Sequence) or not all(isinstance(q, str) for q in queries):
            raise EngineError(
                self.name, request.node, f"queries must be a list of str, got {queries!r}"
            )
        return list(queries)
