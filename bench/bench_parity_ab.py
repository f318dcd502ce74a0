"""Before/after of the parity fixes, and the LLM gap's cause, each A against B in one run.

- ``spin``: the embedder's 2-thread ORT session without spinning (before) against
  spinning within a run that stops at its end (after, ``spinning_config``), and ORT's
  default spinning for reference, on 650 passages; plus the CPU each burns while idle
  in the 0.5 s after a run.
- ``unit_rows``: the vector engine's own work (``run_batch``: ingest + search) with the
  previous ``unit_rows`` (kept below as the reference) against the current one, and the
  raw faiss calls, on 100, 650 and 2,000 unit rows.
- ``flash_attn``: the raw low-level batched loop of bench_parity_raw.py with llama.cpp's
  default flash attention (``auto``) against flash attention off (the LLM engine's
  default), 4 RAG prompts, 32 tokens each.

Rounds alternate the order of the variants; medians are reported. Prints one result
line; saves docs/bench/parity_ab.json.

    PYTHONPATH=.:bench python bench/bench_parity_ab.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bench_parity_raw as raw
import faiss
import numpy as np
from bench_parity_common import passages

import primflow.engines.vector.base_engine as base_engine
import primflow.engines.vector.common as common
from primflow.engines.base import EngineError, EngineRequest
from primflow.engines.embedder.encoder import MiniLMEncoder
from primflow.engines.vector import FaissEngine
from primflow.graph.ir import Op
from primflow.values import Chunk

OUT_PATH = Path(__file__).resolve().parents[1] / "docs" / "bench" / "parity_ab.json"


def alternating(variants: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    for run in variants.values():
        run()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(rounds):
        names = list(variants) if i % 2 == 0 else list(variants)[::-1]
        for name in names:
            started_s = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - started_s)
    return {name: statistics.median(found) for name, found in times.items()}


class _Spinning(MiniLMEncoder):
    """The encoder with other spinning settings for its sessions."""

    def __init__(self, config: dict[str, str] | None) -> None:
        super().__init__()
        self.config = config  # None: ORT's defaults

    def _new_session(self, num_threads: int) -> object:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        for key, value in (self.config or {}).items():
            options.add_session_config_entry(key, value)
        return ort.InferenceSession(
            str(self.model_path), options, providers=["CPUExecutionProvider"]
        )


def idle_cpu_s(encoder: MiniLMEncoder, texts: list[str]) -> float:
    encoder.encode(texts, 2)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    before = usage.ru_utime + usage.ru_stime
    time.sleep(0.5)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime - before


def spin_section(rounds: int) -> dict[str, Any]:
    texts = passages(650, 650)
    no_spin = {
        "session.intra_op.allow_spinning": "0",
        "session.inter_op.allow_spinning": "0",
    }
    encoders = {
        "before_no_spinning": _Spinning(no_spin),
        "after_spin_then_stop": MiniLMEncoder(),  # spinning_config: the engine's setting
        "ort_default_spinning": _Spinning(None),
    }
    medians = alternating(
        {n: (lambda e=e: e.encode(texts, 2)) for n, e in encoders.items()}, rounds
    )
    idle = {name: idle_cpu_s(e, texts[:64]) for name, e in encoders.items()}
    return {"num_passages": len(texts), "median_s": medians, "idle_cpu_s_in_0_5_s": idle}


def previous_unit_rows(value: Any, engine: str, node: str, dim: int | None = None) -> Any:
    """``unit_rows`` as it was before the parity fix (every value checked, every row divided
    and copied), kept as the benchmark's reference."""
    matrix = np.asarray(value, dtype=np.float32)
    if matrix.ndim == 1 and matrix.size > 0:
        matrix = matrix[None, :]
    if matrix.ndim != 2:
        raise EngineError(engine, node, f"vectors must be a 2-d array, got shape {matrix.shape}")
    if dim is not None and matrix.shape[0] > 0 and matrix.shape[1] != dim:
        raise EngineError(engine, node, f"vectors have dimension {matrix.shape[1]}")
    if not np.isfinite(matrix).all():
        raise EngineError(engine, node, "vectors contain NaN or infinity")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32)


def engine_ingest_search(
    engine: FaissEngine, chunks: list[Chunk], vectors: np.ndarray, tag: str
) -> None:
    inputs = {"chunks": chunks, "vectors": vectors}
    [ingested] = engine.run_batch(
        [EngineRequest(tag, "ingest", Op.VECTOR_INGEST, inputs, {"collection": "ab"})]
    )
    assert isinstance(ingested, dict)
    inputs = {"vectors": vectors[:1], "index": ingested["index"]}
    engine.run_batch([EngineRequest(tag, "search", Op.VECTOR_SEARCH, inputs, {"top_k": 3})])
    engine.free_query(tag)


def raw_ingest_search(vectors: np.ndarray) -> None:
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    index.search(vectors[:1], 3)


def unit_rows_section(rounds: int) -> dict[str, Any]:
    current = common.unit_rows
    engine = FaissEngine("vector")
    rng = np.random.default_rng(0)
    rows = {}
    for size in (100, 650, 2000):
        vectors = rng.standard_normal((size, 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)

        chunks = [Chunk(f"p{i}", "ab", i) for i in range(size)]

        def with_unit_rows(fn: Any, v: np.ndarray = vectors, c: list[Chunk] = chunks) -> None:
            common.unit_rows = base_engine.unit_rows = fn
            try:
                engine_ingest_search(engine, c, v, "ab")
            finally:
                common.unit_rows = base_engine.unit_rows = current

        variants: dict[str, Callable[[], object]] = {
            "raw_faiss": lambda v=vectors: raw_ingest_search(v),
            "engine_before": lambda: with_unit_rows(previous_unit_rows),
            "engine_after": lambda: with_unit_rows(current),
        }
        rows[str(size)] = alternating(variants, rounds * 12)
    return rows


def flash_attn_section(rounds: int) -> dict[str, Any]:
    import llama_cpp as lc
    from bench_parity_engines import rag_prompts

    from primflow.engines.llm.model import default_model_path

    chat = raw.PlainChat(default_model_path(), 2)
    loops = {"fa_auto_llama_default": raw.PlainBatchedLoop(chat)}
    default_params = lc.llama_context_default_params

    def fa_off() -> Any:
        params = default_params()
        params.flash_attn_type = 0
        return params

    lc.llama_context_default_params = fa_off
    try:
        loops["fa_off_engine_default"] = raw.PlainBatchedLoop(chat)
    finally:
        lc.llama_context_default_params = default_params
    prompts = rag_prompts(0, 4)
    variants = {n: (lambda b=b: b.generate(prompts, 32)) for n, b in loops.items()}
    return {"num_prompts": len(prompts), "median_s": alternating(variants, rounds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sections", default="spin,unit_rows,flash_attn")
    args = parser.parse_args()
    sections = {
        "spin": spin_section,
        "unit_rows": unit_rows_section,
        "flash_attn": flash_attn_section,
    }
    result: dict[str, Any] = {"benchmark": "parity_ab", "rounds": args.rounds}
    for name in args.sections.split(","):
        result[name] = sections[name](args.rounds)
        print(name, json.dumps(result[name]), flush=True)
    OUT_PATH.parent.mkdir(parents=True, exist_ok=True)
    OUT_PATH.write_text(json.dumps(result, indent=2) + "\n")
    parts = []
    if "spin" in result:
        m = result["spin"]["median_s"]
        parts.append(f"spin {m['before_no_spinning']:.3f} -> {m['after_spin_then_stop']:.3f} s")
    if "unit_rows" in result:
        m = result["unit_rows"]["2000"]
        parts.append(
            f"faiss 2000 engine {m['engine_before'] * 1e3:.3f} -> {m['engine_after'] * 1e3:.3f} ms "
            f"(raw {m['raw_faiss'] * 1e3:.3f} ms)"
        )
    if "flash_attn" in result:
        m = result["flash_attn"]["median_s"]
        parts.append(
            f"raw batched FA auto {m['fa_auto_llama_default']:.3f} s, off "
            f"{m['fa_off_engine_default']:.3f} s"
        )
    print("parity_ab: " + "; ".join(parts))


if __name__ == "__main__":
    main()
