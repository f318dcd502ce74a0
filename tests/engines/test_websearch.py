"""BM25 web search stand-in: finds the expected document, fuses batches, clear errors."""

import asyncio
import json
from pathlib import Path

import pytest

from primflow.engines.base import EngineError, EngineRequest
from primflow.engines.websearch import Bm25Backend, SearchRecord, WebSearchEngine, load_jsonl
from primflow.graph.ir import Op

pytestmark = pytest.mark.engines

DOCS = [
    {
        "title": "json — JSON encoder and decoder",
        "url": "https://docs.example/json",
        "text": "json.load reads a JSON document from a file object and returns Python objects.",
    },
    {
        "title": "csv — CSV file reading",
        "url": "https://docs.example/csv",
        "text": "The csv module reads and writes tabular data in comma separated values format.",
    },
    {
        "title": "Teola",
        "url": "https://papers.example/teola",
        "text": "Teola orchestrates LLM applications as primitive-level dataflow graphs.",
    },
    {
        "title": "Cats",
        "url": "https://pets.example/cats",
        "text": "Cats are small carnivorous mammals kept as pets.",
    },
]


@pytest.fixture
def docs_file(tmp_path: Path) -> Path:
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(json.dumps(d) for d in DOCS) + "\n\n")
    return path


def web_search(
    queries, top_k: int = 2, node: str = "search", query_id: str = "q1"
) -> EngineRequest:
    return EngineRequest(query_id, node, Op.WEB_SEARCH, {"queries": queries}, {"top_k": top_k})


async def run(engine: WebSearchEngine, *requests: EngineRequest) -> list:
    return await asyncio.gather(*engine.submit(list(requests)), return_exceptions=True)


async def test_finds_the_expected_document(docs_file: Path) -> None:
    engine = WebSearchEngine(Bm25Backend.from_jsonl(docs_file))
    [out] = await run(engine, web_search(["how to load a JSON file"]))
    top = out["hits"][0]
    assert top.chunk.source == "https://docs.example/json"
    assert "json.load" in top.chunk.text and top.chunk.text.startswith("json — JSON")
    assert top.score > 0


async def test_several_queries_merge_and_batches_fuse(docs_file: Path) -> None:
    engine = WebSearchEngine(Bm25Backend.from_jsonl(docs_file))
    requests = [
        web_search(["primitive dataflow graphs", "pet mammals"], top_k=3, node="a"),
        web_search("comma separated values", top_k=1, node="b", query_id="q2"),
        web_search(["zzz qqq"], node="nothing"),
    ]
    fused = await run(engine, *requests)
    sources = [h.chunk.source for h in fused[0]["hits"]]
    assert set(sources) == {"https://papers.example/teola", "https://pets.example/cats"}
    assert [h.chunk.source for h in fused[1]["hits"]] == ["https://docs.example/csv"]
    assert fused[2] == {"hits": []}
    for request, out in zip(requests, fused, strict=True):
        [alone] = await run(engine, request)
        assert alone == out


async def test_bad_requests_fail_alone(docs_file: Path) -> None:
    engine = WebSearchEngine(Bm25Backend.from_jsonl(docs_file))
    results = await run(
        engine,
        web_search([1, 2], node="ints"),
        web_search(["cats"], top_k=-1),
        web_search(["cats"]),
    )
    assert isinstance(results[0], EngineError) and "ints" in str(results[0])
    assert isinstance(results[1], EngineError) and "top_k" in str(results[1])
    assert results[2]["hits"][0].chunk.source == "https://pets.example/cats"


def test_bad_jsonl_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(DOCS[0]) + "\n" + json.dumps({"title": "no url"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: .*\['url', 'text'\]"):
        load_jsonl(path)
    path.write_text("[1, 2]\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: a record must be a JSON object"):
        load_jsonl(path)


def test_empty_collection_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one document"):
        Bm25Backend([])
    assert (
        Bm25Backend([SearchRecord("", "u", "only text")]).search(["text"], 5)[0][0].chunk.text
        == "only text"
    )
