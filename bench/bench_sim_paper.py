"""The paper's setups and a 64-GPU cluster in the simulator: primflow against the baselines.

`python bench/bench_sim_paper.py [--only paper|cluster] [--cluster-duration S]`

Every run is `primflow simulate` (the same ``simulate`` call; the equivalent command is
stored with each row): the LLM in engine steps (``--llm-model steps``), the baselines
module by module as `primflow bench` runs them (``--baselines modules``), sample
queries, seed 0.

- ``paper``: the paper's four applications on its GPU profiles (the Teola paper's evaluation set-up;
  ``paper-7b`` / ``paper-13b`` / ``paper-30b`` / ``paper-gemma-2b`` presets), one instance
  per engine, at a low and a high Poisson rate, with the paper's reported speedups.
- ``cluster``: 64 GPUs with many instances per engine (each LLM, embedder and reranker
  instance one GPU; web search and the vector index are servers, not GPUs):
  search_augmented at 1,000 q/s, and advanced_rag at 1,000 q/s (past its capacity)
  and at a rate it sustains.

Prints one result line; JSON at ``docs/bench/sim_paper.json`` (stats only, no
per-query records). Deterministic: the numbers do not depend on the machine; the wall
time of each run (the simulator's speed) does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from primflow.sim.profiles import preset
from primflow.sim.simulator import SimConfig, simulate
from primflow.sim.workload import app_workload

OUT = Path("docs/bench/sim_paper.json")
# Search-API snippets of ~300 characters (a search result's description), 4 per query.
WEB_SNIPPET_CHARS = 300
SCHEMES = ("primflow", "sequential", "parallel")


@dataclass(frozen=True)
class Setup:
    table: str
    app: str
    hardware: str
    rate_qps: float
    duration_s: float
    instances: dict[str, int] = field(default_factory=dict)
    web_search_calls: int = 1
    max_tokens: int | None = None  # None: the app's default (128 answer tokens)
    paper_speedup: str = ""  # the paper's reported speedup for this app and load

    def command(self) -> str:
        parts = [
            f"primflow simulate {self.app} --hardware {self.hardware}",
            f"--rate {self.rate_qps:g} --duration {self.duration_s:g}",
            "--llm-model steps --baselines modules --scheme primflow,sequential,parallel",
        ]
        if self.instances:
            parts.append("--instances " + ",".join(f"{k}={v}" for k, v in self.instances.items()))
        if self.web_search_calls > 1:
            parts.append(f"--web-search-calls {self.web_search_calls}")
        if self.max_tokens is not None:
            parts.append(f"--max-tokens {self.max_tokens}")
        if self.app == "search_augmented":
            parts.append(f"--web-snippet-chars {WEB_SNIPPET_CHARS}")
        return " ".join(parts)


PAPER_REPORTED = {  # the Teola paper's reported results ("up to" over the six baseline schemes)
    ("search_augmented", "low"): "1.79",
    ("search_augmented", "high"): "1.79",
    ("naive_rag", "low"): "1.62",
    ("naive_rag", "high"): "1.67",
    ("advanced_rag", "low"): "2.09",
    ("advanced_rag", "high"): "2.03",
    ("contextual_retrieval", "low"): "1.06-1.59",
    ("contextual_retrieval", "high"): "1.06-1.59",
}

# (app, preset, low rate, high rate): the paper's models per app (its evaluation set-up).
PAPER_APPS = [
    ("search_augmented", "paper-7b", 0.5, 4.0),
    ("search_augmented", "paper-13b", 0.5, 4.0),
    ("search_augmented", "paper-30b", 0.5, 4.0),
    ("naive_rag", "paper-7b", 0.2, 1.0),
    ("naive_rag", "paper-13b", 0.2, 1.0),
    ("advanced_rag", "paper-7b", 0.2, 1.0),
    ("advanced_rag", "paper-13b", 0.2, 1.0),
    ("advanced_rag", "paper-30b", 0.2, 1.0),
    ("contextual_retrieval", "paper-gemma-2b", 0.1, 0.5),
]


def paper_setups() -> list[Setup]:
    return [
        Setup("paper", app, hardware, rate, 60.0, paper_speedup=PAPER_REPORTED[(app, load)])
        for app, hardware, low, high in PAPER_APPS
        for load, rate in (("low", low), ("high", high))
    ]


# 64 GPUs: each LLM / embedder / reranker instance is one GPU (llama-2-7B on a 3090).
# Answers of 32 tokens (`primflow bench`'s length): at the apps' 128 the LLMs alone would
# need more than 64 GPUs at 1,000 q/s (docs/results/simulator.md).
SEARCH_64 = {"judge": 8, "llm": 56, "web_search": 16}
ADVANCED_64 = {"llm": 32, "embedder": 16, "reranker": 16, "vector_index": 16}
CLUSTER_MAX_TOKENS = 32


def cluster_setups(duration_s: float) -> list[Setup]:
    def setup(app: str, rate: float, seconds: float, instances: dict[str, int]) -> Setup:
        calls = 64 if app == "search_augmented" else 1
        return Setup(
            "cluster", app, "paper-7b", rate, seconds, instances, calls, CLUSTER_MAX_TOKENS
        )

    return [
        setup("search_augmented", 1000.0, duration_s, SEARCH_64),
        setup("advanced_rag", 1000.0, duration_s / 4, ADVANCED_64),
        setup("advanced_rag", 100.0, duration_s, ADVANCED_64),
    ]


def run_setup(setup: Setup) -> dict[str, Any]:
    config = SimConfig(
        rate_qps=setup.rate_qps,
        duration_s=setup.duration_s,
        hardware=setup.hardware,
        instances=setup.instances,
        llm_model="steps",
        max_num_web_search_calls=setup.web_search_calls,
        web_snippet_chars=WEB_SNIPPET_CHARS if setup.app == "search_augmented" else 0,
    )
    row: dict[str, Any] = {
        "table": setup.table,
        "app": setup.app,
        "hardware": setup.hardware,
        "rate_qps": setup.rate_qps,
        "duration_s": setup.duration_s,
        "instances": setup.instances,
        "paper_speedup": setup.paper_speedup,
        "max_tokens": setup.max_tokens,
        "command": setup.command(),
        "schemes": {},
    }
    for scheme in SCHEMES:
        changes = {} if setup.max_tokens is None else {"max_tokens": setup.max_tokens}
        workload = app_workload(
            setup.app, scheme, preset(setup.hardware), baselines="modules", config_changes=changes
        )
        started_s = time.perf_counter()
        result = simulate(workload, config)
        stats = result.stats.to_dict()
        row["schemes"][scheme] = {
            **{k: stats[k] for k in ("mean_s", "p50_s", "p95_s", "num_completed", "num_queries")},
            "wall_s": round(time.perf_counter() - started_s, 2),
            "utilization": {n: e["utilization"] for n, e in result.engines.items()},
        }
    primflow_s = row["schemes"]["primflow"]["mean_s"]
    for baseline in ("sequential", "parallel"):
        row[f"speedup_vs_{baseline}"] = row["schemes"][baseline]["mean_s"] / primflow_s
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("paper", "cluster"))
    parser.add_argument("--cluster-duration", type=float, default=10.0, help="seconds")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    setups = []
    if args.only in (None, "paper"):
        setups += paper_setups()
    if args.only in (None, "cluster"):
        setups += cluster_setups(args.cluster_duration)
    rows = []
    for setup in setups:
        rows.append(run_setup(setup))
        print(_row_line(rows[-1]), file=sys.stderr, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    print("bench_sim_paper: " + "; ".join(_row_line(r) for r in rows))
    return 0


def _row_line(row: dict[str, Any]) -> str:
    return (
        f"{row['app']}/{row['hardware']}@{row['rate_qps']:g}q/s "
        f"x{row['speedup_vs_sequential']:.2f} vs seq, x{row['speedup_vs_parallel']:.2f} vs par"
    )


if __name__ == "__main__":
    sys.exit(main())
