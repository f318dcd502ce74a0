"""Persistent collections with a fake embedder and the real FAISS index: names, the
store's errors, the on-disk format round trip, and refusals (another model, another
format version, a repeated source)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from primflow.api.documents import Document, chunk_documents
from primflow.collections import (
    FORMAT_VERSION,
    Collection,
    CollectionError,
    CollectionExists,
    CollectionStore,
    UnknownCollection,
    check_name,
    default_root,
    embedding_model_id,
)
from primflow.collections.embedding import embed_chunks
from primflow.engines.vector import FaissEngine
from primflow.testing.fakes import EMBED_DIM, FakeEmbedder, fake_embedding
from primflow.testing.recording import RecordingEngine

DOCS = [
    Document(
        " ".join(f"Rule {i}: employees get {i} days of leave." for i in range(30)), "handbook.txt"
    ),
    Document(
        "# Warranty\n\n" + " ".join(f"Model {i} has a {i} year warranty." for i in range(20)),
        "faq.md",
    ),
]


@pytest.fixture
def embedder() -> FakeEmbedder:
    return FakeEmbedder("embedder", None, latency_scale=0.0)


def new_collection(tmp_path: Path, embedder: FakeEmbedder, name: str = "docs") -> Collection:
    store = CollectionStore(tmp_path)
    return store.create(name, embedding_model=embedding_model_id(embedder), chunk_size=120)


@pytest.mark.parametrize("name", ["docs", "handbook_2024", "a", "x" * 40])
def test_identifier_like_names_are_accepted(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "Docs", "../etc", "a/b", "a\\b", "1docs", "my-docs", "x" * 41, ".", None]
)
def test_other_names_are_refused_with_the_rule(name: object) -> None:
    with pytest.raises(CollectionError, match="lowercase letters, digits and _"):
        check_name(name)


def test_the_root_comes_from_the_environment_or_the_user_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PRIMFLOW_COLLECTIONS_DIR", str(tmp_path / "mine"))
    assert CollectionStore().root == tmp_path / "mine"
    monkeypatch.delenv("PRIMFLOW_COLLECTIONS_DIR")
    root = default_root()
    assert root.name == "collections" and "primflow" in root.parts
    assert Path(__file__).parents[2] not in root.parents  # never inside the repository


async def test_a_collection_round_trips_through_its_files(
    tmp_path: Path, embedder: FakeEmbedder
) -> None:
    collection = new_collection(tmp_path, embedder)
    report = await collection.add(DOCS, embedder)
    expected = chunk_documents(DOCS, 120, 30)
    assert (report.num_documents, report.num_chunks) == (2, len(expected))
    files = sorted(p.name for p in collection.folder.iterdir())
    assert files == ["chunks.jsonl", "index.faiss", "meta.json"]
    meta = json.loads((collection.folder / "meta.json").read_text())
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["dim"] == EMBED_DIM and meta["num_chunks"] == len(expected)
    assert meta["sources"] == ["handbook.txt", "faq.md"]

    reopened = CollectionStore(tmp_path).open("docs")  # as a later process would
    assert reopened.meta == collection.meta
    engine = FaissEngine()
    handle = reopened.handle(engine)
    assert handle.num_items == len(expected)
    question = fake_embedding(expected[3].text)[None, :]
    from primflow.engines.vector.faiss_collection import FaissCollection

    loaded = engine._get(handle.collection)
    assert isinstance(loaded, FaissCollection)
    assert loaded.chunks == expected
    [hits] = loaded.search(question, 1)
    assert hits[0].chunk == expected[3] and hits[0].score == pytest.approx(1.0, abs=1e-5)


async def test_adding_more_documents_continues_the_chunk_ids_and_keeps_the_old_index(
    tmp_path: Path, embedder: FakeEmbedder
) -> None:
    collection = new_collection(tmp_path, embedder)
    await collection.add(DOCS[:1], embedder)
    engine = FaissEngine()
    first = collection.handle(engine)
    served = engine._get(first.collection)
    await collection.add(["A third document about parking permits."], embedder)
    assert served is not None and len(served) == first.num_items  # copy on write
    reopened = CollectionStore(tmp_path).open("docs")
    second = reopened.handle(engine)
    chunks = engine._get(second.collection).chunks  # type: ignore[union-attr]
    assert [c.chunk_id for c in chunks] == list(range(second.num_items))
    assert chunks[-1].source == "doc-0" and second.num_items == first.num_items + 1
    with pytest.raises(CollectionError, match=r"already holds handbook\.txt"):
        await reopened.add(DOCS[:1], embedder)


async def test_another_embedding_model_is_refused(tmp_path: Path, embedder: FakeEmbedder) -> None:
    store = CollectionStore(tmp_path)
    collection = store.create("docs", embedding_model="some-other-model")
    with pytest.raises(CollectionError, match="was embedded with 'some-other-model'"):
        await collection.add(DOCS, embedder)
    assert embedding_model_id(RecordingEngine(embedder)) == embedding_model_id(embedder)


async def test_store_errors_name_the_collection(tmp_path: Path, embedder: FakeEmbedder) -> None:
    store = CollectionStore(tmp_path / "root")
    assert store.names() == [] and store.list() == []
    with pytest.raises(UnknownCollection, match=r"no collection 'docs' .*collections: none"):
        store.open("docs")
    collection = store.create("docs", embedding_model=embedding_model_id(embedder))
    with pytest.raises(CollectionExists, match="'docs' already exists"):
        store.create("docs", embedding_model="x")
    with pytest.raises(CollectionError, match="is empty; add documents first"):
        collection.handle(FaissEngine())
    with pytest.raises(CollectionError, match="needs a store with a pgvector engine"):
        store.create("pg", embedding_model="x", backend="pgvector")
    (store.root / "not_a_collection").mkdir()
    assert store.names() == ["docs"]
    assert [m.name for m in store.list()] == ["docs"]
    await store.delete("docs")
    assert store.names() == [] and (store.root / "not_a_collection").is_dir()
    with pytest.raises(UnknownCollection):
        await store.delete("docs")


async def test_an_unknown_format_version_is_refused(tmp_path: Path, embedder: FakeEmbedder) -> None:
    collection = new_collection(tmp_path, embedder)
    await collection.add(DOCS, embedder)
    meta_file = collection.folder / "meta.json"
    record = json.loads(meta_file.read_text())
    record["format_version"] = FORMAT_VERSION + 1
    meta_file.write_text(json.dumps(record))
    with pytest.raises(CollectionError, match="format version 2 is not supported"):
        CollectionStore(tmp_path).open("docs")


async def test_chunks_are_embedded_in_order_in_bounded_requests(embedder: FakeEmbedder) -> None:
    recording = RecordingEngine(embedder)
    chunks = chunk_documents([Document("word " * 3000, "long.txt")], 40, 0)
    assert len(chunks) > 256
    vectors = await embed_chunks(recording, chunks, "docs")
    assert np.allclose(vectors, np.stack([fake_embedding(c.text) for c in chunks]))
    assert len(recording.requests) == -(-len(chunks) // 256)
    assert all(len(r.inputs["items"]) <= 256 for r in recording.requests)


async def test_documents_without_text_are_refused(tmp_path: Path, embedder: FakeEmbedder) -> None:
    collection = new_collection(tmp_path, embedder)
    with pytest.raises(CollectionError, match="no documents with text"):
        await collection.add(["   ", ""], embedder)
    assert collection.meta.num_chunks == 0
