"""Engine parity: every embedded engine against the raw library call on the same inputs.

Side by side in one run, interleaved and repeated (the side that goes first alternates):

- ``embed``: the embedder engine vs a plain onnxruntime loop over the same ONNX file and
  tokenizer (length-sorted batches of 32 and of 64, 2 intra-op threads), on 100, 650 and
  2,000 seeded passages of 100-300 characters; the embeddings are compared too.
- ``llm``: the LLM engine vs ``Llama.create_chat_completion`` one request at a time, and
  vs a plain low-level batched loop (``llama_batch``/``llama_decode`` over 4 sequences),
  on the same RAG-style prompts with a fixed output length.
- ``faiss``: the vector engine vs direct faiss calls: ingest + search micro rows, one
  query's retrieval step as the apps run it, and several queries searching one shared
  collection at once (bench_parity_faiss.py).
- ``e2e``: primflow (``Session``, naive_rag) vs a plain sequential loop over the same
  libraries, on the cold workload (~650 passages of ~260 characters with every query,
  one-shot 32-token answer) and on ``primflow bench``'s balanced workload (the sample
  documents in 350-character chunks, the app's tree synthesis, 32 tokens per call);
  the passages both retrieve are compared (printed).

Speedup = raw_s / engine_s per repeat (>= 1.0: the engine is at least as fast); medians
and ranges are reported. The raw loops run in a spawned process (bench_parity_raw.py),
so the two sides never share llama.cpp's OpenMP state (a second thread calling
llama.cpp slows every call). Prints one result
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
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import bench_parity_raw as raw
from bench_parity_e2e import e2e_section
from bench_parity_engines import EMBED_SIZES, MAX_TOKENS, Sides, embed_section, llm_section
from bench_parity_faiss import faiss_section

from primflow.engines.embedder.model_files import onnx_model_path, tokenizer_path
from primflow.engines.llm.model import default_model_path
from primflow.session.factories import embedded_factory
from primflow.session.stack import EngineStack, engines_for_apps

OUT_PATH = Path(__file__).resolve().parents[1] / "docs" / "bench" / "parity.json"
SECTIONS = ("embed", "llm", "faiss", "e2e")
NUM_THREADS = 2


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
    faiss = result.get("faiss", {})
    for key, row in faiss.get("micro", {}).items():
        parts.append(
            f"faiss {key} {row['sealed_via_submit']['speedup_median']:.2f}x "
            f"(caller's array {row['caller_via_submit']['speedup_median']:.2f}x)"
        )
    for group in ("retrieval", "concurrent"):
        for key, row in faiss.get(group, {}).items():
            parts.append(f"faiss {group} {key} {row['speedup_median']:.2f}x")
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
