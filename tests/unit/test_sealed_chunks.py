"""Sealed chunk lists (primflow/values.py): made by the chunker and the collections,
taken by the vector engines without a pass over them; anything else is checked in full."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from primflow.api.documents import Document, chunk_documents
from primflow.collections.chunk_file import read_chunks, write_chunks
from primflow.engines.base import EngineError, EngineRequest
from primflow.engines.vector import FaissEngine
from primflow.graph.ir import Op
from primflow.values import Chunk, SealedChunks, is_sealed_chunks, seal_chunks

DIM = 8


def chunks_of(num: int) -> list[Chunk]:
    return [Chunk(f"text {i}", "doc", i) for i in range(num)]


def unit_rows(num: int) -> np.ndarray:
    rows = np.random.default_rng(num).standard_normal((num, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def ingest(chunks: object, num: int, query: str = "q1") -> EngineRequest:
    inputs = {"chunks": chunks, "vectors": unit_rows(num)}
    return EngineRequest(query, "ingest", Op.VECTOR_INGEST, inputs, {"collection": "docs"})


def test_the_chunker_and_the_chunk_file_hand_over_sealed_lists(tmp_path: Path) -> None:
    chunks = chunk_documents([Document("one two three four five six", "a.txt")], 10)
    assert is_sealed_chunks(chunks) and isinstance(chunks, list)
    assert chunks == list(chunks)  # an ordinary list to every reader
    write_chunks(tmp_path / "chunks.jsonl", chunks)
    read = read_chunks(tmp_path / "chunks.jsonl")
    assert is_sealed_chunks(read) and read == chunks


def test_slices_stay_sealed_and_a_pickled_list_is_checked_again() -> None:
    chunks = seal_chunks(chunks_of(6))
    part = chunks[2:4]  # what a pipelined ingest stage receives (an edge's select)
    assert is_sealed_chunks(part) and part == chunks_of(6)[2:4]
    assert chunks[0] == Chunk("text 0", "doc", 0)
    loaded = pickle.loads(pickle.dumps(chunks))
    assert is_sealed_chunks(loaded) and loaded == chunks
    unsealed = SealedChunks(chunks_of(2))  # built directly, never checked
    assert not is_sealed_chunks(unsealed) and not is_sealed_chunks(unsealed[:1])
    assert not is_sealed_chunks(chunks_of(2))  # a plain list


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c.append("x"),
        lambda c: c.extend(["x"]),
        lambda c: c.insert(0, "x"),
        lambda c: c.__iadd__(["x"]),
        lambda c: c.__setitem__(0, "x"),
        lambda c: c.__setitem__(slice(0, 1), ["x"]),
        lambda c: c.__init__(["x"]),
    ],
)
def test_adding_or_replacing_items_breaks_the_seal(change: object) -> None:
    chunks = seal_chunks(chunks_of(3))
    change(chunks)  # type: ignore[operator]
    assert not is_sealed_chunks(chunks)


def test_taking_items_out_or_reordering_keeps_the_seal() -> None:
    chunks = seal_chunks(chunks_of(5))
    chunks.pop()
    chunks.remove(chunks[0])
    del chunks[0]
    chunks.sort(key=lambda c: -c.chunk_id)
    chunks.reverse()
    assert is_sealed_chunks(chunks) and [c.chunk_id for c in chunks] == [2, 3]


def test_seal_chunks_names_the_first_item_that_is_no_chunk() -> None:
    with pytest.raises(TypeError, match=r"chunks\[1\] must be a Chunk, got str"):
        seal_chunks([Chunk("a", "doc", 0), "b"])


def test_the_engine_takes_sealed_lists_and_checks_everything_else_in_full() -> None:
    engine = FaissEngine()
    [sealed] = engine.run_batch([ingest(seal_chunks(chunks_of(4)), 4)])
    assert isinstance(sealed, dict) and sealed["index"].num_items == 4
    [plain] = engine.run_batch([ingest(chunks_of(4), 4, query="q2")])
    assert isinstance(plain, dict) and plain["index"].num_items == 4

    changed = seal_chunks(chunks_of(3))
    changed[1] = "not a chunk"  # type: ignore[call-overload]
    bad_plain = [*chunks_of(3)[:2], 7]
    bad_tail = seal_chunks(chunks_of(2))
    bad_tail.append(None)  # type: ignore[arg-type]
    outcomes = engine.run_batch(
        [ingest(changed, 3, "q3"), ingest(bad_plain, 3, "q4"), ingest(bad_tail, 3, "q5")]
    )
    for outcome in outcomes:
        assert isinstance(outcome, EngineError)
        assert "chunks must be a list of Chunk" in str(outcome) and "'ingest'" in str(outcome)
    assert engine.collection_names() == ["q1/docs", "q2/docs"]


def test_create_shared_refuses_what_is_not_a_chunk() -> None:
    engine = FaissEngine()
    with pytest.raises(EngineError, match="chunks must be a list of Chunk"):
        engine.create_shared("kb", ["text"], unit_rows(1))  # type: ignore[list-item]
    handle = engine.create_shared("kb", seal_chunks(chunks_of(3)), unit_rows(3))
    assert handle.num_items == 3 and engine.collection_names() == ["kb"]
