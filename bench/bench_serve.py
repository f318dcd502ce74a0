"""HTTP overhead of `primflow serve` per query, side by side with the in-process Session.

Each query's overhead is its wall time at the caller minus the runtime latency the
answer reports (``latency_s``: submit to last output, engines and scheduling); what is
left is everything outside the engines' time. It is measured twice in one run, on the
same apps, questions, documents (samples/docs, sent inline) and Poisson arrivals:

- HTTP: a `primflow serve` subprocess on loopback, driven by ``httpx`` (keep-alive);
- in-process: ``Session.ask`` on the same kind of engine stack in this process.

The HTTP overhead is the difference of the two medians (lowering and optimization are
in both and cancel out); it is reported per app and per repeat, with the spread.
Phases alternate (HTTP first on even repeats), so drift on this shared machine hits
both alike, and only one of the two stacks is ever busy. With ``--url`` it drives a
server already running (HTTP side only: wall minus ``latency_s``). Seeded; prints one
result line; saves JSON (default docs/results/serving.json).

    python bench/bench_serve.py [--engines fake|embedded] [--apps naive_rag,...]
        [--rate-qps 4] [--num-queries 40] [--repeats 3] [--seed 0] [--url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "serve"))  # the test suite's server launcher

from serve_process import ServerProcess  # noqa: E402

from primflow.api.documents import Document, load_documents  # noqa: E402
from primflow.bench.benchmark import questions_for  # noqa: E402
from primflow.session import EngineStack, Session, embedded_factory, fake_factory  # noqa: E402

APPS = ("naive_rag", "advanced_rag", "search_augmented", "contextual_retrieval")
DOCUMENT_APPS = frozenset({"naive_rag", "advanced_rag", "contextual_retrieval"})
CHANGES = {"chunk_size": 350, "chunk_overlap": 30}  # the in-process benchmark's "balanced"
TARGET_MS = 2.0
OUT_PATH = REPO / "docs" / "bench" / "serving.json"


def arrivals(rate_qps: float, num_queries: int, seed: int) -> list[float]:
    gaps = np.random.default_rng(seed).exponential(1.0 / rate_qps, size=num_queries)
    return [float(t) for t in np.cumsum(gaps) - gaps[0]]


async def open_loop(ask: Any, questions: list[str], at_s: list[float]) -> list[float]:
    """Overheads (wall - latency_s, seconds) of question i sent at ``at_s[i]``."""
    started_s = time.perf_counter()
    overheads: list[float] = []

    async def one(when_s: float, question: str) -> None:
        await asyncio.sleep(max(0.0, when_s - (time.perf_counter() - started_s)))
        sent_s = time.perf_counter()
        latency_s = await ask(question)
        overheads.append(time.perf_counter() - sent_s - latency_s)

    await asyncio.gather(*(one(t, questions[i % len(questions)]) for i, t in enumerate(at_s)))
    return overheads


def http_asker(client: httpx.AsyncClient, app: str, documents: list[Document]) -> Any:
    docs = [{"text": d.text, "source": d.source} for d in documents]

    async def ask(question: str) -> float:
        body = {"question": question, "config": CHANGES}
        if app in DOCUMENT_APPS:
            body["documents"] = docs
        response = await client.post(f"/v1/apps/{app}/query", json=body)
        response.raise_for_status()
        latency_s: float = response.json()["latency_s"]
        return latency_s

    return ask


def session_asker(session: Session, app: str, documents: list[Document]) -> Any:
    async def ask(question: str) -> float:
        docs = documents if app in DOCUMENT_APPS else []
        answer = await session.ask(app, question, docs, config_changes=CHANGES)
        return answer.latency_s

    return ask


async def measure_http(url: str, apps: list[str], plan: dict[str, Any]) -> dict[str, list[float]]:
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        results = {}
        for app in apps:
            ask = http_asker(client, app, plan["documents"])
            await ask(plan["questions"][app][0])  # warm: graph cache, connections
            results[app] = await open_loop(ask, plan["questions"][app], plan["arrivals"])
        return results


async def measure_session(
    stack: EngineStack, apps: list[str], plan: dict[str, Any]
) -> dict[str, list[float]]:
    async with Session(stack) as session:
        results = {}
        for app in apps:
            ask = session_asker(session, app, plan["documents"])
            await ask(plan["questions"][app][0])
            results[app] = await open_loop(ask, plan["questions"][app], plan["arrivals"])
        return results


def server_args(args: argparse.Namespace) -> list[str]:
    common = ["--apps", ",".join(args.apps), "--max-queued-queries", "100000"]
    common += ["--cores", str(args.cores)] if args.cores else []
    common += ["--max-tokens", str(args.max_tokens)]
    if args.engines == "fake":
        return [
            *common,
            "--engine-backend",
            "fake",
            "--fake-latency-scale",
            str(args.latency_scale),
        ]
    return [*common, "--engine-backend", "embedded"]


def build_stack(args: argparse.Namespace) -> EngineStack:
    factory = fake_factory(args.latency_scale) if args.engines == "fake" else embedded_factory()
    return EngineStack.for_apps(args.apps, factory, num_cores=args.cores)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    plan = {
        "documents": load_documents(REPO / "samples" / "docs"),
        "questions": {app: questions_for(args.num_queries, app) for app in args.apps},
        "arrivals": arrivals(args.rate_qps, args.num_queries, args.seed),
    }
    repeats: list[dict[str, Any]] = []
    if args.url:
        for _ in range(args.repeats):
            repeats.append({"http": await measure_http(args.url, args.apps, plan)})
        return {"repeats": repeats}
    stack = build_stack(args)
    await stack.start()
    try:
        with ServerProcess(*server_args(args)) as server:
            for number in range(args.repeats):
                order = ("http", "session") if number % 2 == 0 else ("session", "http")
                repeat: dict[str, Any] = {}
                for side in order:
                    if side == "http":
                        repeat["http"] = await measure_http(server.url, args.apps, plan)
                    else:
                        repeat["session"] = await measure_session(stack, args.apps, plan)
                repeats.append(repeat)
    finally:
        await stack.close()
    return {"repeats": repeats}


def summarize(raw: dict[str, Any], apps: list[str]) -> dict[str, Any]:
    per_app: dict[str, Any] = {}
    for app in apps:
        http_ms = [statistics.median(r["http"][app]) * 1e3 for r in raw["repeats"]]
        row: dict[str, Any] = {"http_wall_minus_latency_ms": [round(v, 3) for v in http_ms]}
        if "session" in raw["repeats"][0]:
            session_ms = [statistics.median(r["session"][app]) * 1e3 for r in raw["repeats"]]
            diffs = [h - s for h, s in zip(http_ms, session_ms, strict=True)]
            row["session_wall_minus_latency_ms"] = [round(v, 3) for v in session_ms]
            row["http_overhead_ms"] = [round(v, 3) for v in diffs]
            row["http_overhead_ms_median"] = round(statistics.median(diffs), 3)
        per_app[app] = row
    return per_app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="drive this running server (HTTP side only)")
    parser.add_argument("--engines", choices=("fake", "embedded"), default="fake")
    parser.add_argument("--apps", default=",".join(APPS))
    parser.add_argument("--rate-qps", type=float, default=4.0)
    parser.add_argument("--num-queries", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency-scale", type=float, default=0.01, help="fake engines")
    parser.add_argument("--cores", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--out", type=Path, default=OUT_PATH)
    args = parser.parse_args()
    args.apps = [a.strip() for a in args.apps.split(",") if a.strip()]
    raw = asyncio.run(run(args))
    summary = summarize(raw, args.apps)
    result = {
        "command": "python bench/bench_serve.py " + " ".join(sys.argv[1:]),
        "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
        "machine": {"python": platform.python_version(), "cpu": platform.processor()},
        "settings": {k: (_shown(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "per_app": summary,
        "raw_overheads_s": raw,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    parts = []
    for app, row in summary.items():
        value = row.get("http_overhead_ms_median")
        spread = row.get("http_overhead_ms", row["http_wall_minus_latency_ms"])
        shown = f"{value:.2f}" if value is not None else f"{statistics.median(spread):.2f}"
        parts.append(f"{app} {shown} ms [{min(spread):.2f}..{max(spread):.2f}]")
    print(
        f"serve HTTP overhead per query ({args.engines} engines, {args.rate_qps:g} q/s, "
        f"target < {TARGET_MS:g} ms): " + "; ".join(parts)
    )
    return 0


def _shown(path: Path) -> str:
    """A path as the results show it: relative to the repository when inside it, so
    the saved JSON names no folder of one machine."""
    resolved = path.resolve()
    return str(resolved.relative_to(REPO)) if resolved.is_relative_to(REPO) else path.name


if __name__ == "__main__":
    sys.exit(main())
