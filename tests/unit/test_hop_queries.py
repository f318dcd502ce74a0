"""How multi_hop_rag's hop writes its next search query (``HOP_QUERIES``): the
expanded query's text, the primitives each way lowers to, and a bad name's error."""

from __future__ import annotations

import pytest

from primflow.api.lower import lower_query
from primflow.apps import APPS
from primflow.apps.multi_hop_rag import (
    HOP_QUERIES,
    MAX_EVIDENCE,
    build,
    expanded_query,
)
from primflow.graph.ir import Graph, Op
from primflow.values import Chunk, Hit

APP = APPS["multi_hop_rag"]
EVIDENCE = [
    Hit(Chunk("Project Marten is led by Priya Raman.", "projects.md", 6), 0.8),
    Hit(Chunk("The search engine indexes the wiki. ", "services.md", 3), 0.5),
]


def grown(hop_query: str) -> Graph:
    """The sample query's graph with one hop appended."""
    lowered = lower_query(build(hop_query=hop_query), APP.sample_query())
    assert lowered.growth is not None
    lowered.growth.attach(lowered.graph)
    return lowered.growth.unroll(["no"])


def test_the_mdr_query_is_the_question_then_the_best_passage() -> None:
    query = expanded_query.fn(" Where does the Marten lead work? ", EVIDENCE)
    assert query == ["Where does the Marten lead work?\nProject Marten is led by Priya Raman."]


def test_pseudo_relevance_feedback_appends_every_passage_best_first() -> None:
    [query] = expanded_query.fn("Q?", EVIDENCE, num_passages=MAX_EVIDENCE)
    assert query.split("\n") == ["Q?", EVIDENCE[0].chunk.text, EVIDENCE[1].chunk.text.strip()]


def test_no_evidence_leaves_the_question_alone() -> None:
    assert expanded_query.fn("Q?", []) == ["Q?"]


@pytest.mark.parametrize("hop_query", HOP_QUERIES)
def test_each_way_lowers_to_one_embedded_query_per_hop(hop_query: str) -> None:
    graph = grown(hop_query)
    names = {n.name for n in graph}
    assert {"hops.r1.step.embed_query", "hops.r1.step.search", "hops.r1.step.merge"} <= names
    asks_the_model = hop_query.startswith("model")
    assert ("hops.r1.step.reformulate.decode" in names) is asks_the_model
    expands = hop_query != "model"
    expand_ops = [n.op for n in graph if n.name == "hops.r1.step.expand"]
    assert expand_ops == ([Op.INLINE_FUNCTION] if expands else [])


def test_an_unknown_hop_query_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"hop_query must be one of model, .*got 'mdr'"):
        build(hop_query="mdr")
