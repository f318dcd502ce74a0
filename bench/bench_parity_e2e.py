"""The end-to-end section of the parity benchmark (bench_parity.py): primflow's naive_rag
against a plain sequential loop over the same libraries (bench_parity_raw.timed_rag), on
the cold workload (~650 passages with every query) and ``primflow bench``'s balanced one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bench_parity_raw as raw
from bench_parity_common import paired_stats, passages, questions, summary
from bench_parity_engines import MAX_TOKENS, Sides

from primflow.api.documents import Document, load_documents
from primflow.bench.benchmark import WORKLOADS

COLD_NUM_PASSAGES = 650
COLD_CHUNK_SIZE = 300  # every cold passage (<= 300 characters) is one chunk


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
