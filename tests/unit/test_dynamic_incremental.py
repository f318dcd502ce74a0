"""Property: a graph grown round by round and optimized incrementally is equivalent to
the same graph built and optimized whole.

For random corpora, top-k, hop limits (the least and the most) and judge decisions, the
multi-hop query is grown twice from the same decisions: once as plain p-graph rounds (no
passes) and optimized whole at the end, once the way the session runs it (the first
graph optimized, then each appended round optimized on its own subgraph and boundary,
through the shape cache). Both must lint clean, every pass on every round must keep its outputs'
dependencies (``lint_each``), and every OUTPUT must depend on the same INPUTs.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from primflow import Query, lower_query
from primflow.api.documents import Document
from primflow.apps import multi_hop_rag
from primflow.graph.ir import Graph, Op
from primflow.graph.lint import input_dependencies, lint
from primflow.passes import GraphCache, Optimizer

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WORDS = [
    "kestrel",
    "heron",
    "marten",
    "lisbon",
    "rotterdam",
    "tromso",
    "forecast",
    "billing",
    "search",
    "desk",
]


@st.composite
def cases(draw: st.DrawFn) -> tuple[Query, int, int, list[str]]:
    num_docs = draw(st.integers(1, 4))
    docs = [
        Document(
            " ".join(draw(st.lists(st.sampled_from(WORDS), min_size=3, max_size=400))),
            source=f"doc-{i}",
        )
        for i in range(num_docs)
    ]
    max_hops = draw(st.integers(2, 5))
    min_hops = draw(st.integers(1, max_hops - 1))
    decisions = draw(st.lists(st.sampled_from(["yes", "no"]), min_size=1, max_size=max_hops))
    config = {"top_k": draw(st.integers(1, 4)), "chunk_size": draw(st.sampled_from([64, 256]))}
    query = multi_hop_rag.APP.query("Where does the Kestrel lead work?", docs, **config)
    return query, max_hops, min_hops, decisions


def grow(graph: Graph, growth, decisions: list[str]) -> Graph:  # type: ignore[no-untyped-def]
    answers = iter(decisions)
    while growth.decision is not None:
        growth.grow(growth.decision.node, {"text": next(answers, "no")})
    assert growth.graph is not None
    return growth.graph


@SETTINGS
@given(cases())
def test_incremental_optimization_matches_the_whole_graph(
    case: tuple[Query, int, int, list[str]],
) -> None:
    query, max_hops, min_hops, decisions = case
    template = multi_hop_rag.build(max_hops=max_hops, min_hops=min_hops)
    optimizer = Optimizer(cache=GraphCache(), lint_each=True)

    whole_p = lower_query(template, query)
    assert whole_p.growth is not None
    pgraph = grow(whole_p.growth.attach(whole_p.graph), whole_p.growth, decisions)
    whole, _ = optimizer.optimize(pgraph, template_id="whole")

    grown_q = lower_query(template, query)
    assert grown_q.growth is not None
    first, _ = optimizer.optimize(grown_q.graph, template_id="first")
    attached = grown_q.growth.attach(
        first, lambda g, key: optimizer.optimize(g, template_id=key), "rounds"
    )
    grown = grow(attached, grown_q.growth, decisions)

    lint(pgraph)
    lint(whole)
    lint(grown)
    assert input_dependencies(grown) == input_dependencies(whole) == input_dependencies(pgraph)
    # The same query work: every p-graph engine node is done by the grown e-graph too.
    sources = {n.source for n in grown if n.op not in (Op.INPUT, Op.OUTPUT)}
    assert {n.name for n in pgraph if n.engine is not None} <= sources
    assert len(grown_q.growth.records) == len(whole_p.growth.records)
