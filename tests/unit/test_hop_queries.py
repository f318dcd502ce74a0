"""How multi_hop_rag's hop writes its next search query (``HOP_QUERIES``) and which
hits it keeps: the expanded query's text, the unseen hits, the chain of passages the
answer and the check may read (``READS``), the primitives each way lowers to, and a bad
name's error."""

from __future__ import annotations

import pytest

from primflow.api.lower import lower_query
from primflow.apps import APPS
from primflow.apps.multi_hop_rag import (
    HOP_QUERIES,
    MAX_EVIDENCE,
    NEW_HITS_PER_HOP,
    READS,
    build,
    chain_extended,
    chain_start,
    expanded_query,
    newest_passages,
    unseen_hits,
)
from primflow.graph.ir import Graph, Op
from primflow.values import Chunk, Hit

APP = APPS["multi_hop_rag"]
EVIDENCE = [
    Hit(Chunk("Project Marten is led by Priya Raman.", "projects.md", 6), 0.8),
    Hit(Chunk("The search engine indexes the wiki. ", "services.md", 3), 0.5),
]


def grown(hop_query: str, is_skipping_seen: bool = False, **changes: str) -> Graph:
    """The sample query's graph with one hop appended (the judge asked from round 1)."""
    template = build(hop_query=hop_query, is_skipping_seen=is_skipping_seen, min_hops=1, **changes)
    lowered = lower_query(template, APP.sample_query())
    assert lowered.growth is not None
    lowered.growth.attach(lowered.graph)
    return lowered.growth.unroll(["no"])


def evidence_from(graph: Graph, node: str) -> str:
    """The node whose output ``node``'s ``evidence`` port reads."""
    [edge] = [e for e in graph.in_edges(node) if e.dst_port == "evidence"]
    return edge.src


def test_the_mdr_query_is_the_question_then_the_best_passage() -> None:
    query = expanded_query.fn(" Where does the Marten lead work? ", EVIDENCE)
    assert query == ["Where does the Marten lead work?\nProject Marten is led by Priya Raman."]


def test_the_unseen_hits_are_the_best_the_evidence_does_not_hold() -> None:
    new = [Hit(Chunk(f"passage {i}", "people.md", i), 0.9 - i / 10) for i in range(4)]
    found = [EVIDENCE[0], new[0], EVIDENCE[1], new[1], new[2]]
    assert unseen_hits.fn(EVIDENCE, found) == new[:NEW_HITS_PER_HOP]
    assert unseen_hits.fn(EVIDENCE, found, top_k=3) == new[:3]
    assert unseen_hits.fn(EVIDENCE, EVIDENCE) == []


def test_no_evidence_leaves_the_question_alone() -> None:
    assert expanded_query.fn("Q?", []) == ["Q?"]


@pytest.mark.parametrize("is_skipping_seen", [False, True])
@pytest.mark.parametrize("hop_query", HOP_QUERIES)
def test_each_way_lowers_to_one_embedded_query_per_hop(
    hop_query: str, is_skipping_seen: bool
) -> None:
    graph = grown(hop_query, is_skipping_seen)
    names = {n.name for n in graph}
    assert {"hops.r1.step.embed_query", "hops.r1.step.search", "hops.r1.step.merge"} <= names
    assert ("hops.r1.step.reformulate.decode" in names) is (hop_query == "model")
    expand_ops = [n.op for n in graph if n.name == "hops.r1.step.expand"]
    assert expand_ops == ([] if hop_query == "model" else [Op.INLINE_FUNCTION])
    unseen_ops = [n.op for n in graph if n.name == "hops.r1.step.unseen"]
    assert unseen_ops == ([Op.INLINE_FUNCTION] if is_skipping_seen else [])
    search_top_k = graph.node("hops.r1.step.search").params.get("top_k")
    assert (search_top_k == MAX_EVIDENCE + NEW_HITS_PER_HOP) is is_skipping_seen


def test_an_unknown_hop_query_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"hop_query must be one of model, .*got 'mdr'"):
        build(hop_query="mdr")


def test_the_chain_starts_with_the_first_retrievals_best_passages() -> None:
    assert chain_start.fn(EVIDENCE) == EVIDENCE
    assert chain_start.fn(EVIDENCE, num_passages=1) == EVIDENCE[:1]


def test_a_hop_adds_its_best_hit_the_chain_does_not_hold() -> None:
    bridge, other = EVIDENCE
    fact = Hit(Chunk("Priya Raman works remotely from Tromso.", "people.md", 2), 0.7)
    # The expanded query finds the bridge passage first; the chain keeps its order.
    assert chain_extended.fn([bridge], [bridge, fact, other]) == [bridge, fact]
    assert chain_extended.fn([bridge], [bridge, fact, other], num_passages=2) == [
        bridge,
        fact,
        other,
    ]
    assert chain_extended.fn([bridge], [bridge]) == [bridge]


@pytest.mark.parametrize("answer_reads", READS)
@pytest.mark.parametrize("check_reads", READS)
def test_the_answer_and_the_check_read_the_chosen_passages(
    answer_reads: str, check_reads: str
) -> None:
    graph = grown("question+passage", True, answer_reads=answer_reads, check_reads=check_reads)
    names = {n.name for n in graph}
    is_chaining = "chain" in (answer_reads, check_reads)
    assert ("chain_start" in names) is is_chaining
    assert ("hops.r1.step.extend_chain" in names) is is_chaining
    chain, evidence = "hops.r1.step.extend_chain", "hops.r1.step.merge"
    answer_from = evidence_from(graph, "answer.prefill")
    assert answer_from == (chain if answer_reads == "chain" else evidence)
    check_from = evidence_from(graph, "hops.r2.enough.prefill")
    assert check_from == (chain if check_reads == "chain" else evidence)


def test_a_check_on_the_newest_passage_reads_the_hops_find_only() -> None:
    bridge, other = EVIDENCE
    assert newest_passages.fn([bridge, other]) == [other]
    graph = grown("question+passage", True, answer_reads="chain", check_reads="newest")
    assert evidence_from(graph, "hops.r2.enough.prefill") == "hops.r2.newest"
    [edge] = graph.in_edges("hops.r2.newest")
    assert edge.src == "hops.r1.step.extend_chain"


def test_an_unknown_reading_or_prompt_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"answer_reads must be one of evidence, chain"):
        build(answer_reads="best")
    with pytest.raises(ValueError, match=r"answer_prompt must be one of brief, "):
        build(answer_prompt="long")
