"""The LLM on a remote OpenAI-compatible server: apps end to end, and prefix warm-up.

Two measurements in one run, on one server:

1. **Apps**: each app answers the same questions with primflow and with the sequential
   and parallel baselines, all on one engine stack whose LLM is the remote server (the
   other engines embedded), schemes interleaved question by question (the first one
   rotates). Before every query the server's prefix cache is flushed (``flush``), so no
   scheme reuses the prompts another left. Answers are fixed-length (``ignore_eos``).
2. **Warm-up**: one RAG-shaped request (instruction + question known at once, the
   retrieved context after a simulated retrieval of ``--retrieval-ms``), with and
   without partial prefill: warm-up sends the known part at t=0 (``max_tokens`` 1)
   and the full request when the context arrives; none sends the full request then.
   Measured from the context's arrival: time to first token and to the end of a short
   decode, plus the prompt tokens the server reused (its usage fields where it reports
   them; for llama-cpp-python, which reports none, its log's ``prefix-match hit``).

Without ``--engines`` it starts `python -m llama_cpp.server` with the shipped SmolLM2 on
loopback (one thread, ``--interrupt_requests false``, and no ``--cache``: a prompt is
reused only by the next request, which the flush then controls) and stops it after.
With ``--engines FILE`` it uses that file's ``llm`` entry as it stands (a vLLM or SGLang
server on a GPU needs no change; their flush endpoints are tried, see ``flush``).
Seeded; prints one result line; saves JSON (default docs/bench/remote.json).

    python bench/bench_remote.py [--engines FILE] [--apps naive_rag,advanced_rag]
        [--num-questions 3] [--max-tokens 16] [--repeats 5] [--retrieval-ms 1500]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "remote"))  # the test suite's server launcher

from remote_servers import MODEL_ALIAS, LlamaServer, start_llama_server  # noqa: E402

from primflow.api.documents import load_documents  # noqa: E402
from primflow.bench.benchmark import questions_for  # noqa: E402
from primflow.commands.profile_samples import words  # noqa: E402
from primflow.engines.base import EngineRequest  # noqa: E402
from primflow.engines.remote import RemoteError, RemoteLLMEngine  # noqa: E402
from primflow.engines.remote.requests import PATHS, warmup_body  # noqa: E402
from primflow.graph.ir import Op  # noqa: E402
from primflow.session import EngineStack, Session, embedded_factory  # noqa: E402
from primflow.session.engine_config import stack_factory  # noqa: E402

SCHEMES = ("primflow", "sequential", "parallel")
CHANGES = {"chunk_size": 350, "chunk_overlap": 30, "ignore_eos": True}  # bench "balanced"
OUT_PATH = REPO / "docs" / "bench" / "remote.json"
PREFIX_HIT = re.compile(r"Llama\.generate: (\d+) prefix-match hit, remaining (\d+) prompt")
# Cache flush endpoints of servers that have one (vLLM needs VLLM_SERVER_DEV_MODE=1).
FLUSH_PATHS = {"vllm": "/reset_prefix_cache", "sglang": "/flush_cache"}

SYSTEM = "You are a helpful assistant. Answer from the context only."
INSTRUCTION = (
    "You answer questions about a technical report. Read the question first, then the "
    "context passages, and answer in one sentence. If the context does not contain the "
    "answer, say so. Cite the passage number you used. "
)
PASSAGE = (
    "Passage {i}: The {name} subsystem processed {n} requests per second during the "
    "evaluation and its median latency stayed below {m} milliseconds under load. "
)
NAMES = ["ingest", "router", "cache", "planner", "indexer", "merger", "ranker", "writer"]


def engine_file(server: LlamaServer, folder: Path) -> Path:
    path = folder / "remote.yaml"
    path.write_text(
        "engines:\n  llm:\n    backend: openai\n"
        f"    base_url: {server.base_url}\n    model: {MODEL_ALIAS}\n"
        "    dialect: llama_cpp_python\n    max_concurrent_requests: 1\n"
    )
    return path


class Probe:
    """What the server reports: reused prompt tokens (usage, or the launched server's
    log) and the cache flush before each measured query."""

    def __init__(self, engine: RemoteLLMEngine, server: LlamaServer | None, seed: int) -> None:
        self.engine = engine
        self.server = server
        self.rng = np.random.default_rng(seed)
        self._log_offset = 0

    def mark(self) -> None:
        self._log_offset = len(self.server.log()) if self.server else 0

    def prefix_hits(self) -> list[tuple[int, int]]:
        """(reused, computed) prompt tokens of each request since ``mark``."""
        if self.server is None:
            return []
        found = PREFIX_HIT.findall(self.server.log()[self._log_offset :])
        return [(int(reused), int(rest)) for reused, rest in found]

    async def flush(self) -> None:
        """Leave nothing of the last query's prompts for the next one to reuse."""
        path = FLUSH_PATHS.get(self.engine.dialect.name)
        if path is not None:
            try:
                await self.engine.client.post_json(path, {}, is_idempotent=True)
                return
            except RemoteError as err:
                print(f"warning: {err}; flushing with an unrelated prompt", file=sys.stderr)
        # One context (llama.cpp servers): an unrelated prompt replaces the last one.
        text = words(self.rng, 24)
        body = warmup_body(self.engine.model, self.engine.api, self.engine.dialect, None, text, 0)
        await self.engine.client.post_json(PATHS[self.engine.api], body, is_idempotent=True)


# --- 1. apps end to end -----------------------------------------------------------------


async def measure_apps(stack: EngineStack, probe: Probe, args: argparse.Namespace) -> list[Any]:
    documents = load_documents(REPO / "samples" / "docs")
    changes = {**CHANGES, "max_tokens": args.max_tokens}
    records: list[dict[str, Any]] = []
    async with Session(stack) as session:
        for app in args.apps:
            questions = questions_for(args.num_questions + 1, app)
            for number, question in enumerate(questions):
                rotated = [*SCHEMES[number % 3 :], *SCHEMES[: number % 3]]
                for scheme in rotated:
                    await probe.flush()
                    probe.mark()
                    before = probe.engine.stats()
                    answer = await session.ask(
                        app, question, documents, scheme=scheme, config_changes=changes
                    )
                    session.forget_prefixes(answer.query_id)
                    after = probe.engine.stats()
                    hits = probe.prefix_hits()
                    record = {
                        "app": app,
                        "scheme": scheme,
                        "question": number - 1,  # -1: the warm-up round, not averaged
                        "latency_s": answer.latency_s,
                        "num_llm_requests": len(
                            [p for p in answer.timing.primitives if p.engine == "llm"]
                        ),
                        "num_warmups": after["num_warmups"] - before["num_warmups"],
                        "num_reused_prompt_tokens": sum(r for r, _ in hits),
                        "num_computed_prompt_tokens": sum(c for _, c in hits),
                    }
                    records.append(record)
                    print(
                        f"  {app} {scheme:<10} q{number - 1}: {answer.latency_s:.2f} s",
                        file=sys.stderr,
                        flush=True,
                    )
    return records


def summarize_apps(records: list[dict[str, Any]], apps: list[str]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for app in apps:
        row: dict[str, Any] = {}
        for scheme in SCHEMES:
            kept = [r for r in records if r["app"] == app and r["scheme"] == scheme]
            kept = [r for r in kept if r["question"] >= 0]
            row[scheme] = {
                "mean_latency_s": statistics.mean(r["latency_s"] for r in kept),
                "latencies_s": [round(r["latency_s"], 3) for r in kept],
                "mean_num_warmups": statistics.mean(r["num_warmups"] for r in kept),
                "mean_reused_prompt_tokens": statistics.mean(
                    r["num_reused_prompt_tokens"] for r in kept
                ),
            }
        primflow_s = row["primflow"]["mean_latency_s"]
        row["speedup_vs_sequential"] = row["sequential"]["mean_latency_s"] / primflow_s
        row["speedup_vs_parallel"] = row["parallel"]["mean_latency_s"] / primflow_s
        summary[app] = row
    return summary


# --- 2. prefix warm-up, request level ---------------------------------------------------


def prompt_parts(rep: int) -> tuple[str, str]:
    question = f"Question {rep}: which subsystem had the lowest median latency?\n"
    context = "".join(
        PASSAGE.format(i=i, name=NAMES[(i + rep) % 8], n=100 + 37 * i, m=5 + (i * 7) % 23)
        for i in range(6)
    )
    return INSTRUCTION * 2 + question, f"Context:\n{context}\nAnswer:"


def phase(query: str, node: str, op: Op, inputs: dict[str, Any], **params: Any) -> EngineRequest:
    return EngineRequest(query, node, op, inputs, params, llm_request_id=query)


async def one_request(
    engine: RemoteLLMEngine, probe: Probe, rep: int, is_warm: bool, args: argparse.Namespace
) -> dict[str, Any]:
    known, context = prompt_parts(rep)
    query = f"{'warm' if is_warm else 'cold'}-{rep}"
    await probe.flush()
    probe.mark()
    before = engine.stats()
    started: list[Any] = []
    if is_warm:
        partial = phase(
            query, "p", Op.LLM_PARTIAL_PREFILL, {"k": known}, template="{k}", system=SYSTEM
        )
        started = engine.submit([partial])
    await asyncio.sleep(args.retrieval_ms / 1000)  # the context arrives
    arrived_s = time.perf_counter()
    if is_warm:
        prefill = phase(query, "f", Op.LLM_FULL_PREFILL, {"c": context}, template="{c}")
    else:
        inputs = {"k": known, "c": context}
        prefill = phase(query, "f", Op.LLM_PREFILL, inputs, template="{k}{c}", system=SYSTEM)
    await asyncio.gather(*started, *engine.submit([prefill]))
    first_text_s: list[float] = []
    decode = phase(query, "d", Op.LLM_DECODE, {}, max_tokens=args.decode_tokens, ignore_eos=True)
    decode.on_text = lambda _: (
        first_text_s.append(time.perf_counter()) if not first_text_s else None
    )
    (done,) = engine.submit([decode])
    await done
    ended_s = time.perf_counter()
    engine.release(query)
    after = engine.stats()
    hits = probe.prefix_hits()
    reused, computed = hits[-1] if hits else (None, None)  # the full request's
    return {
        "mode": "warm_up" if is_warm else "none",
        "rep": rep,
        "ttft_after_context_s": (first_text_s[0] if first_text_s else ended_s) - arrived_s,
        "latency_after_context_s": ended_s - arrived_s,
        "usage_cached_prompt_tokens": after["num_cached_prompt_tokens"]
        - before["num_cached_prompt_tokens"],
        "log_reused_prompt_tokens": reused,
        "log_computed_prompt_tokens": computed,
    }


async def measure_warmup(
    engine: RemoteLLMEngine, probe: Probe, args: argparse.Namespace
) -> list[Any]:
    records = []
    for rep in range(args.repeats):
        for is_warm in (rep % 2 == 0, rep % 2 == 1):  # who goes first alternates
            record = await one_request(engine, probe, rep, is_warm, args)
            records.append(record)
            print(
                f"  warm-up {record['mode']:<7} rep {rep}: first token "
                f"{record['ttft_after_context_s']:.3f} s after the context",
                file=sys.stderr,
                flush=True,
            )
    return records


def summarize_warmup(records: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for mode in ("warm_up", "none"):
        kept = [r for r in records if r["mode"] == mode]
        reused = [
            r["log_reused_prompt_tokens"] for r in kept if r["log_reused_prompt_tokens"] is not None
        ]
        computed = [
            r["log_computed_prompt_tokens"]
            for r in kept
            if r["log_computed_prompt_tokens"] is not None
        ]
        summary[mode] = {
            "median_ttft_after_context_s": statistics.median(
                r["ttft_after_context_s"] for r in kept
            ),
            "median_latency_after_context_s": statistics.median(
                r["latency_after_context_s"] for r in kept
            ),
            "mean_usage_cached_prompt_tokens": statistics.mean(
                r["usage_cached_prompt_tokens"] for r in kept
            ),
            "mean_log_reused_prompt_tokens": statistics.mean(reused) if reused else None,
            "mean_log_computed_prompt_tokens": statistics.mean(computed) if computed else None,
        }
    warm, none = summary["warm_up"], summary["none"]
    summary["ttft_speedup"] = (
        none["median_ttft_after_context_s"] / warm["median_ttft_after_context_s"]
    )
    return summary


# --- the run ------------------------------------------------------------------------------


async def run(
    args: argparse.Namespace, server: LlamaServer | None, engines: Path
) -> dict[str, Any]:
    stack = EngineStack.for_apps(args.apps, stack_factory(engines, embedded_factory()))
    engine = stack.engines["llm"]
    if not isinstance(engine, RemoteLLMEngine):
        raise SystemExit(f"{engines}: the llm engine must be remote (backend: openai)")
    probe = Probe(engine, server, args.seed)
    async with stack:
        records = await measure_apps(stack, probe, args)
        warmups = await measure_warmup(engine, probe, args)
    return {
        "apps": summarize_apps(records, args.apps),
        "warm_up": summarize_warmup(warmups),
        "raw": {"apps": records, "warm_up": warmups},
    }


def result_line(result: dict[str, Any]) -> str:
    parts = [
        f"{app} x{row['speedup_vs_sequential']:.2f} vs seq, x{row['speedup_vs_parallel']:.2f} "
        f"vs par ({row['primflow']['mean_latency_s']:.2f} s)"
        for app, row in result["apps"].items()
    ]
    warm, none = result["warm_up"]["warm_up"], result["warm_up"]["none"]
    parts.append(
        f"warm-up: first token {warm['median_ttft_after_context_s']:.3f} s vs "
        f"{none['median_ttft_after_context_s']:.3f} s after the context "
        f"(x{result['warm_up']['ttft_speedup']:.2f}), prompt tokens reused "
        f"{_tokens(warm)} vs {_tokens(none)}"
    )
    return "bench_remote: " + "; ".join(parts)


def _tokens(row: dict[str, Any]) -> str:
    reused = row["mean_log_reused_prompt_tokens"]
    if reused is None:
        return f"{row['mean_usage_cached_prompt_tokens']:.0f}"
    return f"{reused:.0f}/{reused + row['mean_log_computed_prompt_tokens']:.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", type=Path, help="engine file whose llm is remote")
    parser.add_argument("--apps", default="naive_rag,advanced_rag")
    parser.add_argument("--num-questions", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5, help="warm-up requests per mode")
    parser.add_argument("--retrieval-ms", type=float, default=1500.0)
    parser.add_argument("--decode-tokens", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT_PATH)
    args = parser.parse_args()
    args.apps = [a.strip() for a in args.apps.split(",") if a.strip()]
    with tempfile.TemporaryDirectory() as folder:
        server = None
        engines = args.engines
        if engines is None:
            server = start_llama_server(Path(folder) / "server.log", is_cache_enabled=False)
            engines = engine_file(server, Path(folder))
        try:
            result = asyncio.run(run(args, server, engines))
        finally:
            if server is not None:
                server.stop()
    settings = {k: (_shown(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    saved = {
        "command": "python bench/bench_remote.py " + " ".join(sys.argv[1:]),
        "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
        "machine": {"python": platform.python_version(), "cpu": platform.processor()},
        "server": "llama_cpp.server (SmolLM2-135M Q4_1, 1 thread), launched" if server else "given",
        "settings": settings,
        **result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(saved, indent=1) + "\n")
    print(result_line(result))
    return 0


def _shown(path: Path) -> str:
    """A path relative to the repository when inside it (no machine's folder in JSON)."""
    resolved = path.resolve()
    return str(resolved.relative_to(REPO)) if resolved.is_relative_to(REPO) else path.name


if __name__ == "__main__":
    sys.exit(main())
