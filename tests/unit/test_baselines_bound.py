"""The uncontended critical-path bound: e-graph nodes map back to their p-graph node by
provenance (never by name) and share its solo time by items / tokens; computed on fake
timings, no engine runs."""

from __future__ import annotations

from fractions import Fraction

import pytest

from primflow.api.lower import lower_query
from primflow.apps import APPS
from primflow.commands.console import format_breakdown
from primflow.graph import ops
from primflow.graph.ir import INLINE_OPS, Graph, Node, Op, Port, PortType, Provenance, Stage
from primflow.passes import optimize
from primflow.session.solo_bound import solo_bound, solo_times


def _embed(name: str, num_items: int, provenance: Provenance | None = None) -> Node:
    return Node(
        name,
        Op.EMBED,
        inputs=(Port(ops.ITEMS, PortType.TEXTS, num_items),),
        outputs=(Port(ops.VECTORS, PortType.VECTORS, num_items),),
        engine="embedder",
        provenance=provenance or Provenance(name),
    )


def _piece(source: str, pass_name: str, share: Fraction, stage: Stage | None = None) -> Provenance:
    return Provenance(source, pass_name, share, stage)


def _pgraph() -> Graph:
    graph = Graph(
        [
            _embed("embed", 8),
            Node("prefill", Op.LLM_PREFILL, engine="llm"),
            Node("decode", Op.LLM_DECODE, engine="llm"),
        ]
    )
    graph.order("embed", "prefill")
    graph.order("prefill", "decode")
    return graph


def _egraph() -> Graph:
    """What the passes make of it: 6 + 2 item stages, a split prefill, 2 partial decodes;
    the partial prefill does not wait for the embedding."""
    half = Fraction(1, 2)
    graph = Graph(
        [
            _embed("embed.s0", 6, _piece("embed", "decompose_stages", Fraction(6, 8))),
            _embed("embed.s1", 2, _piece("embed", "decompose_stages", Fraction(2, 8))),
            Node(
                "embed.join",
                Op.AGGREGATE,
                provenance=_piece("embed", "decompose_stages", Fraction(1)),
            ),
            Node(
                "prefill.partial",
                Op.LLM_PARTIAL_PREFILL,
                engine="llm",
                provenance=_piece("prefill", "split_prefill", half),
            ),
            Node(
                "prefill.full",
                Op.LLM_FULL_PREFILL,
                engine="llm",
                provenance=_piece("prefill", "split_prefill", half),
            ),
            Node(
                "decode.p0",
                Op.LLM_PARTIAL_DECODE,
                engine="llm",
                provenance=_piece("decode", "pipeline_decode", half),
            ),
            Node(
                "decode.p1~1",
                Op.LLM_PARTIAL_DECODE,
                engine="llm",
                provenance=_piece("decode", "pipeline_decode", half),
            ),
        ]
    )
    for src, dst in (
        ("embed.s0", "embed.join"),
        ("embed.s1", "embed.join"),
        ("embed.join", "prefill.full"),
        ("prefill.partial", "prefill.full"),
        ("prefill.full", "decode.p0"),
        ("decode.p0", "decode.p1~1"),
    ):
        graph.order(src, dst)
    return graph


REFERENCE_S = {"embed": 0.8, "prefill": 1.0, "decode": 2.0}


def _renamed(graph: Graph, names: dict[str, str]) -> Graph:
    renamed = Graph(n.replace(name=names[n.name]) for n in graph)
    for edge in graph.edges:
        renamed.order(names[edge.src], names[edge.dst])
    return renamed


def test_nodes_map_by_provenance_not_by_name() -> None:
    graph = _egraph()
    names = {n.name: f"node_{i}" for i, n in enumerate(graph)}
    tokens = {"prefill.partial": 30, "prefill.full": 70}
    solo, _ = solo_times(graph, _pgraph(), REFERENCE_S, {}, tokens)
    renamed_tokens = {names[k]: v for k, v in tokens.items()}
    solo_renamed, num_unmatched = solo_times(
        _renamed(graph, names), _pgraph(), REFERENCE_S, {}, renamed_tokens
    )
    assert num_unmatched == 0
    assert solo_renamed == {names[k]: v for k, v in solo.items()}
    # A node named like a stage of "embed" but with no provenance stands for itself.
    lookalike = Graph([_embed("embed.s1", 8, Provenance())])
    solo, num_unmatched = solo_times(lookalike, _pgraph(), REFERENCE_S, {"embed.s1": 0.5})
    assert (solo["embed.s1"], num_unmatched) == (0.5, 1)


def test_shares_follow_items_tokens_and_partial_decodes() -> None:
    solo, num_unmatched = solo_times(
        _egraph(), _pgraph(), REFERENCE_S, {}, {"prefill.partial": 30, "prefill.full": 70}
    )
    assert num_unmatched == 0
    assert solo["embed.s0"] == pytest.approx(0.6)  # 6 of 8 items
    assert solo["embed.s1"] == pytest.approx(0.2)
    assert solo["embed.join"] == 0.0
    assert solo["prefill.partial"] == pytest.approx(0.3)  # 30 of 100 tokens
    assert solo["prefill.full"] == pytest.approx(0.7)
    assert solo["decode.p0"] == solo["decode.p1~1"] == pytest.approx(1.0)


def test_unknown_tokens_split_a_prefill_evenly() -> None:
    solo, _ = solo_times(_egraph(), _pgraph(), REFERENCE_S, {}, {"prefill.full": 70})
    assert solo["prefill.partial"] == solo["prefill.full"] == pytest.approx(0.5)


def test_bound_takes_the_heaviest_uncontended_path() -> None:
    graph = _egraph()
    # Measured times are contended (much longer): the bound must not use them.
    measured_s = {n.name: 9.0 for n in graph if n.op not in INLINE_OPS}
    bound = solo_bound(
        graph,
        graph,
        _pgraph(),
        REFERENCE_S,
        measured_s,
        {"prefill.partial": 30, "prefill.full": 70},
    )
    # embed.s0 (0.6) > prefill.partial (0.3), then full 0.7 + decodes 2.0.
    assert bound.path == ["embed.s0", "prefill.full", "decode.p0", "decode.p1~1"]
    assert bound.bound_s == pytest.approx(0.6 + 0.7 + 2.0)
    assert bound.num_unmatched == 0


def test_a_node_without_reference_keeps_its_measured_time() -> None:
    graph = _egraph()
    graph.add_node(Node("web", Op.WEB_SEARCH, engine="web_search"))
    graph.order("decode.p1~1", "web")
    bound = solo_bound(graph, graph, _pgraph(), REFERENCE_S, {"web": 0.25})
    assert bound.num_unmatched == 1
    assert bound.solo_s["web"] == 0.25
    assert bound.path[-1] == "web"


@pytest.mark.parametrize("app_name", sorted(APPS))
def test_real_egraphs_conserve_each_primitives_solo_time(app_name: str) -> None:
    """On the real passes' output every engine node maps to a p-graph node, and the
    pieces of a p-graph node add up to its solo time."""
    app = APPS[app_name]
    pgraph = lower_query(app.template(), app.sample_query()).graph
    egraph, _report = optimize(pgraph)
    engine_nodes = [n for n in pgraph if n.op not in INLINE_OPS]
    reference_s = {n.name: 1.0 + i for i, n in enumerate(engine_nodes)}
    solo, num_unmatched = solo_times(egraph, pgraph, reference_s, {})
    assert num_unmatched == 0
    totals: dict[str, float] = {}
    for node in egraph:
        if node.op in INLINE_OPS:
            continue
        assert node.source in reference_s, node.name
        totals[node.source] = totals.get(node.source, 0.0) + solo[node.name]
    for name, total in totals.items():
        assert total == pytest.approx(reference_s[name]), name


def test_some_app_is_rewritten_into_pieces() -> None:
    # Guards the test above against passes that change nothing.
    app = APPS["advanced_rag"]
    pgraph = lower_query(app.template(), app.sample_query()).graph
    egraph, _report = optimize(pgraph)
    sources = [n.source for n in egraph if n.op not in INLINE_OPS]
    assert len(sources) > len(set(sources))


async def test_session_answers_get_the_bound_of_their_sequential_reference() -> None:
    from primflow.session import EngineStack, Session, fake_factory

    app = APPS["naive_rag"]
    query = app.sample_query()
    stack = EngineStack.for_apps(["naive_rag"], fake_factory(latency_scale=0.001))
    async with stack, Session(stack) as session:
        answers = {
            scheme: await session.ask(
                "naive_rag", query.question, list(query.documents), scheme=scheme
            )
            for scheme in ("primflow", "sequential", "parallel")
        }
        other = await session.ask("naive_rag", "Another question?", list(query.documents))
    reference = answers["sequential"]
    assert reference.solo is not None  # a sequential run is its own reference
    assert answers["primflow"].bound_s is None
    breakdown = format_breakdown(answers["primflow"])
    assert "critical-path bound: pass --bound" in breakdown
    names = [p.node for p in answers["primflow"].timing.primitives]
    assert any(len(name) > 34 for name in names)  # longer than the column used to be
    rows = breakdown.splitlines()
    for name in names:  # every name whole, in the column its header starts
        assert any(row[2:].startswith(name + " ") for row in rows), name
    for scheme in ("primflow", "parallel"):
        answers[scheme].set_reference(reference)
        solo = answers[scheme].solo
        assert solo is not None and solo.num_unmatched == 0 and solo.path
    assert answers["primflow"].num_tokens  # the split prefills' token estimates were seen
    assert "s uncontended (ratio" in format_breakdown(answers["primflow"])
    solo = answers["primflow"].solo
    assert solo is not None and answers["primflow"].to_json()["bound_path"] == solo.path
    with pytest.raises(ValueError, match="sequential run"):
        other.set_reference(answers["parallel"])
    with pytest.raises(ValueError, match="Another question"):
        other.set_reference(reference)
