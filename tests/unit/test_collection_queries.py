"""Queries against a collection skip indexing: the lowered and optimized graphs have no
document EMBED and no VECTOR_INGEST, and a session answers from the collection with
the embedder asked to embed the question alone (fake LLM and embedder, real FAISS)."""

from __future__ import annotations

from pathlib import Path

import pytest

from primflow.api.config import Query
from primflow.api.indexed import without_indexing
from primflow.api.lower import lower_query
from primflow.api.template import TemplateError
from primflow.apps import APPS
from primflow.apps.samples import sample_documents
from primflow.collections import CollectionError, CollectionStore, embedding_model_id
from primflow.engines.base import EngineKind
from primflow.engines.vector import FaissEngine
from primflow.graph.ir import Graph, Op, PortType
from primflow.passes import Optimizer
from primflow.session import EngineStack, Session, fake_factory
from primflow.testing.recording import RecordingEngine
from primflow.values import IndexHandle


def assert_reads_a_prebuilt_index(graph: Graph) -> None:
    """No VECTOR_INGEST, no EMBED of chunks, and the searches read the index input."""
    assert not graph.nodes_with_op(Op.VECTOR_INGEST)
    embeds = graph.nodes_with_op(Op.EMBED)
    assert embeds and all(p.type is not PortType.CHUNKS for n in embeds for p in n.inputs)
    searches = graph.nodes_with_op(Op.VECTOR_SEARCH)
    assert searches and all(
        "input.index" in {e.src for e in graph.in_edges(n.name)} for n in searches
    )


@pytest.mark.parametrize("app_name", ["naive_rag", "advanced_rag"])
def test_the_collection_variant_lowers_without_indexing(app_name: str) -> None:
    app = APPS[app_name]
    indexed = without_indexing(app.template())
    kinds = {c.kind for c in indexed.template.components}
    assert not kinds & {"chunk", "ingest"}
    assert indexed.index_channel == "index" and indexed.search_engines == ("vector_index",)
    handle = IndexHandle("vector_index", "c_docs", 40)
    query = Query("What is the leave policy?", (), app.default_config, {"index": handle})
    lowered = lower_query(indexed.template, query)
    assert lowered.inputs["index"] is handle
    assert_reads_a_prebuilt_index(lowered.graph)
    egraph, _report = Optimizer().optimize(lowered.graph, template_id=indexed.template.name)
    assert_reads_a_prebuilt_index(egraph)
    # top_k is capped by the collection's size, as it is by an ingest's.
    small = Query("q?", (), app.default_config, {"index": IndexHandle("vector_index", "c", 2)})
    for search in lower_query(indexed.template, small).graph.nodes_with_op(Op.VECTOR_SEARCH):
        num_vectors = search.inputs[0].num_items
        assert num_vectors is not None and search.outputs[0].num_items == num_vectors * 2


def test_the_order_between_kept_components_survives_dropped_ones() -> None:
    indexed = without_indexing(APPS["advanced_rag"].template())
    assert ("expand", "embed_question") in indexed.template.edges
    assert ("merge", "synthesize") in indexed.template.edges


def test_contextual_retrieval_says_it_needs_documents() -> None:
    with pytest.raises(TemplateError, match=r"'situate'.*pass documents instead"):
        without_indexing(APPS["contextual_retrieval"].template())


def test_a_template_without_an_index_is_refused() -> None:
    with pytest.raises(TemplateError, match="builds 0 vector indexes"):
        without_indexing(APPS["search_augmented"].template())


def faiss_stack() -> EngineStack:
    fakes = fake_factory(latency_scale=0.001)

    def build(name, kind, budget, profile):  # type: ignore[no-untyped-def]
        if kind is EngineKind.VECTOR_INDEX:
            return FaissEngine(name, profile=profile)
        engine = fakes(name, kind, budget, profile)
        return RecordingEngine(engine) if kind is EngineKind.EMBEDDER else engine

    return EngineStack.for_apps(["naive_rag", "advanced_rag"], build)


@pytest.mark.parametrize("app_name", ["naive_rag", "advanced_rag"])
async def test_a_session_answers_from_a_collection_embedding_only_the_question(
    tmp_path: Path, app_name: str
) -> None:
    stack = faiss_stack()
    embedder = stack.engines["embedder"]
    assert isinstance(embedder, RecordingEngine)
    async with stack, Session(stack) as session:
        store = CollectionStore(tmp_path)
        collection = store.create("samples", embedding_model=embedding_model_id(embedder))
        await collection.add(sample_documents(), embedder)
        num_indexing_requests = len(embedder.requests)
        reopened = store.open("samples")
        answer = await session.ask(app_name, "How many days of paid leave?", collection=reopened)
        again = await session.ask(app_name, "And parental leave?", collection=reopened)
        with pytest.raises(ValueError, match="documents or a collection, not both"):
            await session.ask(
                app_name, "q?", sample_documents("handbook_leave.md"), collection=reopened
            )
    assert_reads_a_prebuilt_index(answer.graph)
    assert again.is_cache_hit
    sources = {d.source for d in sample_documents()}
    assert answer.passages and {h.chunk.source for h in answer.passages} <= sources
    query_requests = embedder.requests_of(answer.query_id)
    items = [item for r in query_requests for item in r.inputs["items"]]
    assert items and all(isinstance(item, str) for item in items)  # no chunk embedded
    assert "How many days of paid leave?" in items
    assert len(embedder.requests) > num_indexing_requests


async def test_a_session_refuses_a_collection_of_another_model(tmp_path: Path) -> None:
    stack = faiss_stack()
    async with stack, Session(stack) as session:
        store = CollectionStore(tmp_path)
        store.create("other", embedding_model="another-model")
        with pytest.raises(CollectionError, match="was embedded with 'another-model'"):
            await session.ask("naive_rag", "q?", collection=store.open("other"))
        with pytest.raises(TemplateError, match="pass documents instead"):
            await session.ask("contextual_retrieval", "q?", collection=store.open("other"))
