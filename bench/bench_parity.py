"""Engine parity: every embedded engine against the raw library call on the same inputs.

Side by side in one run, interleaved and repeated (the side that goes first alternates):

- ``embed``: the embedder engine vs a plain onnxruntime loop over the same ONNX file and
  tokenizer (length-sorted batches of 32 and of 64, 2 intra-op threads), on 100, 650 and
  2,000 seeded passages of 100-300 characters; the embeddings are compared too.
- ``llm``: the LLM engine vs ``Llama.create_chat_completion`` one request at a time, and
  vs a plain low-level batched loop (``llama_batch``/``llama_decode`` over 4 sequences),
  on the same RAG-style prompts with a fixed output length.
- ``faiss``: ingest + search through the vector engine vs direct faiss calls.
- ``e2e``: primflow (``Session``, naive_rag) vs a plain sequential loop over the same
  libraries, on the cold workload (~650 passages of ~260 characters with every query,
  one-shot 32-token answer) and on ``primflow bench``'s balanced workload (the sample
  documents in 350-character chunks, the app's tree synthesis, 32 tokens per call);
  the passages both retrieve are compared (printed).

Speedup = raw_s / engine_s per repeat (>= 1.0: the engine is at least as fast); medians
and ranges are reported. The raw loops run in a spawned process (bench_parity_raw.py),
so the two sides never share llama.cpp's OpenMP state (stack.md P10). Prints one result
line per section and saves docs/bench/parity.json (or ``--out``).

    .venv/bin/python bench/bench_parity.py [--sections embed,llm,faiss,e2e] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import multiprocessing
import os
import platform
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import bench_parity_raw as raw
import numpy as np
from bench_parity_common import paired_stats, passages, questions, summary

from primflow.api.documents import Document, load_documents
from primflow.bench.benchmark import WORKLOADS
from primflow.engines.base import Engine, EngineRequest
from primflow.engines.embedder.model_files import onnx_model_path, tokenizer_path
from primflow.engines.llm import LlamaEngine
from primflow.engines.llm.model import default_model_path
from primflow.engines.vector import FaissEngine
from primflow.graph.ir import Op
from primflow.session.factories import embedded_factory
from primflow.session.session import Session
from primflow.session.stack import EngineStack, engines_for_apps
from primflow.values import Chunk, IndexHandle

OUT_PATH = Path(__file__).resolve().parents[1] / "docs" / "bench" / "parity.json"
SECTIONS = ("embed", "llm", "faiss", "e2e")
EMBED_SIZES = (100, 650, 2000)
MAX_TOKENS = 32
NUM_THREADS = 2
COLD_NUM_PASSAGES = 650
COLD_CHUNK_SIZE = 300  # every cold passage (<= 300 characters) is one chunk


class Sides:
    """The engine side (this process) and the raw side (a spawned process)."""

    def __init__(self, stack: EngineStack, pool: ProcessPoolExecutor) -> None:
        self.stack = stack
        self.pool = pool
        self.session = Session(stack)
        self._num_queries = 0

    def engine(self, name: str) -> Engine:
        return self.stack.engines[name]

    def query_id(self, tag: str) -> str:
        self._num_queries += 1
        return f"parity-{tag}-{self._num_queries}"

    async def on_raw(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)


async def paired(
    repeats: int,
    run_raw: Callable[[], Awaitable[float]],
    run_engine: Callable[[], Awaitable[float]],
) -> tuple[list[float], list[float]]:
    raw_s: list[float] = []
    engine_s: list[float] = []
    for i in range(repeats):
        if i % 2 == 0:
            raw_s.append(await run_raw())
            engine_s.append(await run_engine())
        else:
            engine_s.append(await run_engine())
            raw_s.append(await run_raw())
    return raw_s, engine_s


# --- embedder ---


async def engine_embed(sides: Sides, texts: list[str]) -> tuple[float, np.ndarray]:
    request = EngineRequest(sides.query_id("embed"), "embed", Op.EMBED, {"items": texts}, {})
    started_s = time.perf_counter()
    [future] = sides.engine("embedder").submit([request])
    vectors = (await future)["vectors"]
    return time.perf_counter() - started_s, vectors


async def embed_section(
    sides: Sides, seed: int, repeats: int, sizes: Sequence[int] = EMBED_SIZES
) -> dict[str, Any]:
    rows = {}
    for size in sizes:
        texts = passages(seed + size, size)
        for batch_size in (32, 64):
            found: dict[str, Any] = {}

            async def run_raw(
                bs: int = batch_size, items: list[str] = texts, out: dict[str, Any] = found
            ) -> float:
                seconds, out["raw"] = await sides.on_raw(raw.timed_embed, items, bs)
                return float(seconds)

            async def run_engine(items: list[str] = texts, out: dict[str, Any] = found) -> float:
                seconds, out["engine"] = await engine_embed(sides, items)
                return seconds

            raw_s, engine_s = await paired(repeats, run_raw, run_engine)
            stats = paired_stats(raw_s, engine_s)
            stats["max_abs_diff"] = float(np.abs(found["raw"] - found["engine"]).max())
            stats["num_passages"] = size
            stats["raw_batch_size"] = batch_size
            name = f"embed {size} passages vs raw batches of {batch_size}"
            print(summary(name, stats) + f" (max |diff| {stats['max_abs_diff']:.1e})", flush=True)
            rows[f"{size}/{batch_size}"] = stats
    return rows


# --- LLM ---


def rag_prompts(seed: int, num: int) -> list[str]:
    """The naive-RAG answer prompt of ``num`` questions, each over 3 passages."""
    contexts = passages(seed, 3 * num, 220, 300)
    return [
        raw.ANSWER_PROMPT.format(
            question=question, context=raw.numbered(contexts[3 * i : 3 * i + 3])
        )
        for i, question in enumerate(questions(num))
    ]


async def engine_call(sides: Sides, prompt: str, max_tokens: int) -> str:
    engine = sides.engine("llm")
    query = sides.query_id("llm")
    prefill = EngineRequest(
        query, "prefill", Op.LLM_PREFILL, {"q": prompt}, {"template": "{q}"}, llm_request_id=query
    )
    decode = EngineRequest(
        query,
        "decode",
        Op.LLM_DECODE,
        {},
        {"max_tokens": max_tokens, "ignore_eos": True},
        llm_request_id=query,
    )
    [prefilled] = engine.submit([prefill])
    await prefilled
    [decoded] = engine.submit([decode])
    text = str((await decoded)["text"])
    engine.abort(query)  # drops its cached prompt too, as the raw side resets
    return text


async def llm_section(sides: Sides, seed: int, repeats: int) -> dict[str, Any]:
    prompts = rag_prompts(seed, 4)

    async def raw_one() -> float:
        seconds, _ = await sides.on_raw(raw.timed_chat, prompts, MAX_TOKENS)
        return float(seconds)

    async def engine_one() -> float:
        started_s = time.perf_counter()
        for prompt in prompts:
            await engine_call(sides, prompt, MAX_TOKENS)
        return time.perf_counter() - started_s

    async def raw_batched() -> float:
        seconds, _ = await sides.on_raw(raw.timed_batched, prompts, MAX_TOKENS)
        return float(seconds)

    async def engine_batched() -> float:
        started_s = time.perf_counter()
        await asyncio.gather(*(engine_call(sides, p, MAX_TOKENS) for p in prompts))
        return time.perf_counter() - started_s

    one = paired_stats(*await paired(repeats, raw_one, engine_one))
    print(summary(f"llm {len(prompts)} requests one at a time vs create_chat_completion", one))
    llm = sides.engine("llm")
    assert isinstance(llm, LlamaEngine)
    steps_before = llm.stats()["num_steps"]
    batched = paired_stats(*await paired(repeats, raw_batched, engine_batched))
    await asyncio.sleep(0.05)  # the last step's counters are published just after it
    # The raw loop's llama_decode calls: prompts packed 512 tokens a batch, then one per token.
    batched["engine_num_steps_per_run"] = (llm.stats()["num_steps"] - steps_before) / repeats
    print(summary(f"llm {len(prompts)} requests at once vs low-level batched loop", batched))
    return {"one_at_a_time": one, "batched": batched, "num_prompts": len(prompts)}


# --- FAISS ---


async def engine_faiss(sides: Sides, vectors: np.ndarray, queries: np.ndarray, k: int) -> float:
    engine = sides.engine("vector_index")
    query = sides.query_id("faiss")
    chunks = [Chunk(f"p{i}", "parity", i) for i in range(len(vectors))]
    started_s = time.perf_counter()
    ingest = EngineRequest(
        query,
        "ingest",
        Op.VECTOR_INGEST,
        {"chunks": chunks, "vectors": vectors},
        {"collection": "parity"},
    )
    [ingested] = engine.submit([ingest])
    handle: IndexHandle = (await ingested)["index"]
    search = EngineRequest(
        query, "search", Op.VECTOR_SEARCH, {"vectors": queries, "index": handle}, {"top_k": k}
    )
    [searched] = engine.submit([search])
    await searched
    seconds = time.perf_counter() - started_s
    engine.release(query)
    return seconds


def engine_faiss_inline(sides: Sides, vectors: np.ndarray, queries: np.ndarray, k: int) -> float:
    """The engine's own work (``run_batch`` called directly): checks, index, hits; no
    hand-off to the engine thread and back."""
    engine = sides.engine("vector_index")
    assert isinstance(engine, FaissEngine)
    query = sides.query_id("faiss")
    chunks = [Chunk(f"p{i}", "parity", i) for i in range(len(vectors))]
    started_s = time.perf_counter()
    inputs = {"chunks": chunks, "vectors": vectors}
    ingest = EngineRequest(query, "ingest", Op.VECTOR_INGEST, inputs, {"collection": "parity"})
    [ingested] = engine.run_batch([ingest])
    assert isinstance(ingested, dict)
    inputs = {"vectors": queries, "index": ingested["index"]}
    engine.run_batch([EngineRequest(query, "search", Op.VECTOR_SEARCH, inputs, {"top_k": k})])
    seconds = time.perf_counter() - started_s
    engine.free_query(query)
    return seconds


async def faiss_section(sides: Sides, seed: int, repeats: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    rows = {}
    for size in EMBED_SIZES:
        vectors = rng.standard_normal((size, raw.DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        queries = vectors[:1].copy()

        async def run_raw(v: np.ndarray = vectors, q: np.ndarray = queries) -> float:
            ingest_s, search_s, _ = await sides.on_raw(raw.timed_faiss, v, q, 3)
            return float(ingest_s + search_s)

        async def run_engine(v: np.ndarray = vectors, q: np.ndarray = queries) -> float:
            return await engine_faiss(sides, v, q, 3)

        async def run_batch_only(v: np.ndarray = vectors, q: np.ndarray = queries) -> float:
            return engine_faiss_inline(sides, v, q, 3)

        num = max(repeats, 5) * 4  # sub-millisecond: more repeats
        stats = paired_stats(*await paired(num, run_raw, run_engine))
        print(summary(f"faiss ingest+search {size} vectors via submit", stats))
        inline = paired_stats(*await paired(num, run_raw, run_batch_only))
        print(summary(f"faiss ingest+search {size} vectors, engine work only", inline))
        rows[str(size)] = {"via_submit": stats, "run_batch": inline}
    return rows


# --- end to end ---


def cold_documents(seed: int) -> list[Document]:
    texts = passages(seed, COLD_NUM_PASSAGES, 220, 300)
    return [Document(text, f"passage-{i}.txt") for i, text in enumerate(texts)]


async def e2e_workload(
    sides: Sides,
    name: str,
    documents: list[Document],
    changes: dict[str, Any],
    repeats: int,
    num_questions: int,
) -> dict[str, Any]:
    mode = changes.get("synthesis_mode", "tree")
    top_k = 3
    is_chunked = name != "cold"  # cold passages arrive as passages; balanced as documents
    docs = [(d.text, d.source) for d in documents]
    chunking = (changes["chunk_size"], changes["chunk_overlap"])
    texts = [d.text for d in documents]
    asked = questions(num_questions)
    same_hits: list[bool] = []
    raw_s: list[float] = []
    engine_s: list[float] = []
    for i in range(repeats * num_questions):
        question = asked[i % num_questions]
        found: dict[str, Any] = {}

        async def run_raw(q: str = question, out: dict[str, Any] = found) -> float:
            seconds, _, hits = await sides.on_raw(
                raw.timed_rag,
                q,
                [] if is_chunked else texts,
                top_k,
                MAX_TOKENS,
                mode,
                docs if is_chunked else [],
                chunking,
            )
            out["raw"] = hits
            return float(seconds)

        async def run_engine(q: str = question, out: dict[str, Any] = found) -> float:
            started_s = time.perf_counter()
            answer = await sides.session.ask("naive_rag", q, documents, config_changes=changes)
            seconds = time.perf_counter() - started_s
            sides.session.forget_prefixes(answer.query_id)
            out["engine"] = [h.chunk.text for h in answer.passages]
            return seconds

        if i % 2 == 0:  # the side that goes first alternates
            raw_s.append(await run_raw())
            engine_s.append(await run_engine())
        else:
            engine_s.append(await run_engine())
            raw_s.append(await run_raw())
        same_hits.append(found["raw"] == found["engine"])
    stats = paired_stats(raw_s, engine_s)
    stats.update(
        num_questions=num_questions,
        same_passages=sum(same_hits),
        num_pairs=len(same_hits),
        synthesis_mode=mode,
        num_documents=len(documents),
    )
    print(summary(f"e2e {name}", stats) + f", same passages {sum(same_hits)}/{len(same_hits)}")
    return stats


async def e2e_section(sides: Sides, seed: int, repeats: int, workloads: Sequence[str]) -> Any:
    rows = {}
    base = {"max_tokens": MAX_TOKENS, "ignore_eos": True}
    for workload in workloads:
        if workload == "cold":
            changes = {
                **base,
                "chunk_size": COLD_CHUNK_SIZE,
                "chunk_overlap": 0,
                "synthesis_mode": "one_shot",
            }
            documents = cold_documents(seed)
        else:
            changes = {**base, **WORKLOADS["balanced"]}
            documents = load_documents(Path(__file__).resolve().parents[1] / "samples" / "docs")
        # warm-up: one query per side (model pages, ORT arenas)
        await e2e_workload(sides, f"{workload} warm-up", documents, changes, 1, 1)
        rows[workload] = await e2e_workload(sides, workload, documents, changes, repeats, 3)
    return rows


async def main(args: argparse.Namespace) -> dict[str, Any]:
    sections = args.sections.split(",")
    model_path = default_model_path()
    pool = ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=raw.load,
        initargs=(model_path, str(onnx_model_path()), str(tokenizer_path()), NUM_THREADS),
    )
    stack = EngineStack(engines_for_apps(["naive_rag"]), embedded_factory(), placement="shared")
    result: dict[str, Any] = {
        "benchmark": "parity",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "seed": args.seed,
        "repeats": args.repeats,
        "max_tokens": MAX_TOKENS,
        "num_threads": NUM_THREADS,
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "load_avg_start": os.getloadavg(),
        },
    }
    async with stack:
        sides = Sides(stack, pool)
        await sides.session.start()
        await sides.on_raw(raw.timed_embed, ["warm up"], 32)  # loads the raw side
        if "embed" in sections:
            sizes = [int(n) for n in args.embed_sizes.split(",")]
            result["embed"] = await embed_section(sides, args.seed, args.repeats, sizes)
        if "faiss" in sections:
            result["faiss"] = await faiss_section(sides, args.seed, args.repeats)
        if "llm" in sections:
            result["llm"] = await llm_section(sides, args.seed, args.repeats)
        if "e2e" in sections:
            workloads = args.workloads.split(",")
            result["e2e"] = await e2e_section(sides, args.seed, args.repeats, workloads)
        await sides.session.close()
    pool.shutdown()
    result["machine"]["load_avg_end"] = os.getloadavg()
    return result


def one_line(result: dict[str, Any]) -> str:
    parts = []
    for key, row in result.get("embed", {}).items():
        parts.append(f"embed {key} {row['speedup_median']:.2f}x")
    for key, row in result.get("llm", {}).items():
        if isinstance(row, dict):
            parts.append(f"llm {key} {row['speedup_median']:.2f}x")
    for key, row in result.get("faiss", {}).items():
        parts.append(
            f"faiss {key} {row['via_submit']['speedup_median']:.2f}x "
            f"(work only {row['run_batch']['speedup_median']:.2f}x)"
        )
    for key, row in result.get("e2e", {}).items():
        parts.append(f"e2e {key} {row['speedup_median']:.2f}x")
    return "parity (raw_s / engine_s, median): " + ", ".join(parts)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--workloads", default="cold,balanced")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--embed-sizes", default=",".join(map(str, EMBED_SIZES)))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT_PATH)
    arguments = parser.parse_args()
    found = asyncio.run(main(arguments))
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(found, indent=2) + "\n")
    print(one_line(found))
