"""Contextual retrieval embeds "context + chunk" (Anthropic's method) while the index
stores, and hits quote, the original chunk; the zip_texts aggregate that builds it."""

from __future__ import annotations

import pytest

from primflow.api.components.aggregate import Aggregate, Mode
from primflow.api.lower import lower_query
from primflow.apps import APPS
from primflow.graph import ops
from primflow.graph.ir import Node, Op, Port, PortType
from primflow.graph.lint import find_problems
from primflow.passes import optimize
from primflow.runtime.inline_ops import run_aggregate
from primflow.session import EngineStack, Session, fake_factory
from primflow.testing.fakes import FakeEngine
from primflow.values import Chunk


def _zip_node(num_parts: int = 2, **params: object) -> Node:
    return Node(
        "zip",
        Op.AGGREGATE,
        inputs=tuple(Port(ops.part(i), PortType.TEXTS, 2) for i in range(num_parts)),
        outputs=(Port(ops.RESULT, PortType.TEXTS, 2),),
        params={"mode": "zip_texts", **params},
    )


def test_zip_texts_puts_each_context_before_its_chunk() -> None:
    chunks = [Chunk("Warranty: 2 years.", "faq.md", 0), Chunk("Returns: 30 days.", "faq.md", 1)]
    contexts = ["From the Tidepool FAQ, warranty section.", "  "]
    result = run_aggregate(_zip_node(), {"part_0": contexts, "part_1": chunks})
    # An empty context leaves the chunk text alone rather than a dangling separator.
    assert result == [
        "From the Tidepool FAQ, warranty section.\n\nWarranty: 2 years.",
        "Returns: 30 days.",
    ]
    spaced = run_aggregate(_zip_node(separator=" | "), {"part_0": contexts, "part_1": chunks})
    assert spaced[0] == "From the Tidepool FAQ, warranty section. | Warranty: 2 years."


def test_zip_texts_refuses_parts_of_different_lengths() -> None:
    with pytest.raises(ValueError, match=r"'zip' \(zip_texts\): parts have \[1, 2\] items"):
        run_aggregate(_zip_node(), {"part_0": ["only one"], "part_1": ["a", "b"]})


def test_aggregate_component_types_zip_texts() -> None:
    component = Aggregate(parts=["contexts", "chunks"], mode=Mode.ZIP_TEXTS)
    types = {"part_0": PortType.TEXTS, "part_1": PortType.CHUNKS}
    assert component.output_types(types) == {"result": PortType.TEXTS}
    with pytest.raises(ValueError, match="zip_texts joins texts or chunks"):
        component.output_types({"part_0": PortType.HITS, "part_1": PortType.CHUNKS})


def test_lowered_and_optimized_graphs_lint_clean() -> None:
    app = APPS["contextual_retrieval"]
    graph = lower_query(app.template(), app.sample_query()).graph
    assert find_problems(graph) == []
    assert find_problems(optimize(graph)[0]) == []


@pytest.mark.parametrize("scheme", ["primflow", "sequential"])
async def test_embedder_sees_context_and_chunk_hits_quote_the_chunk(scheme: str) -> None:
    app = APPS["contextual_retrieval"]
    query = app.sample_query()
    stack = EngineStack.for_apps([app.name], fake_factory(latency_scale=0.001))
    async with stack, Session(stack) as session:
        answer = await session.ask(
            app.name,
            query.question,
            list(query.documents),
            scheme=scheme,
            config_changes=app.sample_config_changes,
        )
    embedder = stack.engines["embedder"]
    assert isinstance(embedder, FakeEngine)
    embedded = [
        text
        for batch in embedder.batches
        for request in batch
        if request.node.startswith("embed_docs")
        for text in request.inputs[ops.ITEMS]
    ]
    chunk_texts = {hit.chunk.text for hit in answer.passages}
    assert answer.passages and embedded
    for text in embedded:
        context, _, chunk_text = text.partition("\n\n")
        assert context and chunk_text, text
    # Each hit is an original chunk; its embedded text ended with it, after a context.
    for chunk_text in chunk_texts:
        assert not any(chunk_text == text for text in embedded)
        assert any(text.endswith("\n\n" + chunk_text) for text in embedded)
