"""`primflow bench`: primflow against the sequential and parallel baselines, end to end
on the embedded engines; writes docs/bench/<name>.{json,md} and PNG plots
(<name>_latency_vs_rate.png, <name>_timeline.png).

Quick check (about 5 minutes on 2 cores): ``primflow bench --apps naive_rag,advanced_rag
--workloads balanced --placements shared --num-questions 3 --num-load-queries 5
--rates 0.25,0.5 --name e2e_quick``. The full command is in docs/guide/benchmarking.md.

Ablations: ``--ablations full,no_passes,...`` (or ``all``) adds one scheme
``primflow/<ablation>`` per name, each on its own session over the same engines,
interleaved with the other schemes question by question; the report gets an "Ablations"
table (mean latency, speedup vs full and vs the baselines). Single queries only, unless
``--ablations-under-load``.

Answers are fixed-length by default (every query generates exactly --max-tokens answer
tokens, end-of-sequence ignored), so latencies do not hinge on where the model stops;
``--natural-length`` lets answers end at end-of-sequence.

Your own workflow: ``--spec FLOW.yaml`` (repeatable; ``--import STEPS.py`` for its
function steps) benchmarks it like a built-in app, with ``--docs`` and ``--questions``
for its documents and questions; with ``--spec`` and no ``--apps`` only the specs run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from primflow.apps import APPS, App
from primflow.baselines import ABLATIONS
from primflow.commands.app_args import (
    AppChoiceError,
    add_import_argument,
    import_modules,
    load_spec_app,
)
from primflow.commands.engine_options import (
    OptionError,
    add_model_options,
    check_model_options,
    embedded_settings,
)

SCHEMES = ("primflow", "sequential", "parallel")
WORKLOAD_NAMES = ("balanced", "cold")
PLACEMENTS = ("shared", "dedicated")


def _names(text: str, known: tuple[str, ...] | list[str], what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {', '.join(unknown) or '(none given)'}; known: {', '.join(known)}"
        )
    return names


def _ablations(text: str) -> list[str]:
    """Comma-separated ablation names, ``all`` for every one, ``none`` for none."""
    if text.strip().lower() == "all":
        return list(ABLATIONS)
    if text.strip().lower() == "none":
        return []
    names = _names(text, list(ABLATIONS), "ablation")
    return list(dict.fromkeys(names))  # each once, in the order given


def _rates(text: str) -> list[float]:
    if text.strip().lower() == "none":
        return []
    try:
        rates = [float(r) for r in text.split(",") if r.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"rates must be numbers, got {text!r}") from None
    if not rates or any(r <= 0 for r in rates):
        raise argparse.ArgumentTypeError(f"rates must be > 0 queries/s, got {text!r}")
    return sorted(rates)


def add_parser(subparsers: Any, name: str, help_text: str) -> None:
    parser = subparsers.add_parser(name, help=help_text, description=__doc__)
    parser.add_argument(
        "--apps",
        type=lambda t: _names(t, list(APPS), "app"),
        default=None,
        help="comma-separated apps (default naive_rag, or none when --spec is given)",
    )
    parser.add_argument(
        "--spec",
        type=Path,
        action="append",
        default=[],
        help="a YAML/JSON workflow spec of your own to benchmark (repeatable)",
    )
    add_import_argument(parser)
    parser.add_argument(
        "--questions",
        type=Path,
        help="a file of questions (one per line, or JSON lines with 'question') instead of "
        "each app's sample question set",
    )
    parser.add_argument(
        "--schemes", type=lambda t: _names(t, SCHEMES, "scheme"), default=list(SCHEMES)
    )
    parser.add_argument(
        "--workloads",
        type=lambda t: _names(t, WORKLOAD_NAMES, "workload"),
        default=list(WORKLOAD_NAMES),
    )
    parser.add_argument(
        "--placements", type=lambda t: _names(t, PLACEMENTS, "placement"), default=list(PLACEMENTS)
    )
    parser.add_argument(
        "--rates",
        type=_rates,
        default=[0.25, 0.5, 1.0, 2.0],
        help="Poisson request rates in queries/s (comma-separated), lowest first; the "
        "runs stop after the first rate where sequential's p95 exceeds 3x its single-query "
        "latency; 'none': single queries only",
    )
    parser.add_argument(
        "--num-questions",
        type=int,
        default=10,
        help="single-query questions per scheme (>= 10 for p95)",
    )
    parser.add_argument("--num-load-queries", type=int, default=12, help="queries per Poisson run")
    parser.add_argument("--max-tokens", type=int, default=32, help="answer length (tokens)")
    parser.add_argument(
        "--natural-length",
        action="store_true",
        help="let answers stop at end-of-sequence (default: exactly --max-tokens tokens each)",
    )
    parser.add_argument(
        "--ablations",
        type=_ablations,
        default=[],
        help=f"comma-separated ablations run as schemes primflow/<name> (single queries), "
        f"'all' or 'none' (default none); known: {', '.join(ABLATIONS)}",
    )
    parser.add_argument(
        "--ablations-under-load",
        action="store_true",
        help="also run the ablations in the Poisson runs (each adds a run per rate)",
    )
    parser.add_argument(
        "--cores", type=int, help="cores the engines may use (default: all the machine's)"
    )
    parser.add_argument(
        "--docs",
        type=Path,
        help="a document file or folder (.txt, .md, .pdf, .jsonl) every query brings "
        "(default: samples/docs)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("docs/bench"))
    parser.add_argument("--name", default="e2e", help="output file stem")
    parser.add_argument(
        "--llm-fast",
        action="store_true",
        help="serve the LLM as a Q4_0 conversion (faster batches with flash attention, "
        "slightly different weights; docs/results/llm-engine.md)",
    )
    parser.add_argument(
        "--engines",
        type=Path,
        help="a YAML engine stack (remote servers; unlisted engines run embedded); "
        "docs/guide/remote-engines.md",
    )
    add_model_options(parser)
    parser.add_argument(
        "--fake",
        action="store_true",
        help="fake engines (checks the harness only; numbers mean nothing)",
    )


def run(args: argparse.Namespace) -> int:
    cores = 1 if args.cores is None else args.cores
    counts = (args.num_questions, args.num_load_queries, args.max_tokens, cores)
    if min(counts) < 1:
        print(
            "primflow bench: --num-questions, --num-load-queries, --max-tokens and --cores "
            "must be >= 1",
            file=sys.stderr,
        )
        return 2
    if args.docs is not None and not args.docs.exists():
        print(f"primflow bench: --docs {str(args.docs)!r} does not exist", file=sys.stderr)
        return 2
    from primflow.commands.run_inputs import InputError, read_questions

    try:
        apps = bench_apps(args)
        questions = read_questions(str(args.questions)) if args.questions else None
        check_model_options(args)
    except (AppChoiceError, InputError, OptionError) as exc:
        print(f"primflow bench: {exc}", file=sys.stderr)
        return 2
    from primflow.bench.benchmark import BenchConfig, run_benchmark
    from primflow.bench.report import write_report
    from primflow.engines.base import EngineError
    from primflow.session.factories import (
        EngineUnavailable,
        embedded_factory,
        fake_factory,
    )

    config = BenchConfig(
        apps=apps,
        schemes=args.schemes,
        workloads=args.workloads,
        placements=args.placements,
        rates_qps=args.rates,
        num_questions=args.num_questions,
        num_load_queries=args.num_load_queries,
        max_tokens=args.max_tokens,
        seed=args.seed,
        docs=args.docs,
        num_cores=args.cores,
        ablations=args.ablations,
        is_ablations_under_load=args.ablations_under_load,
        ignore_eos=not args.natural_length,
        questions=questions,
    )
    settings = embedded_settings(args, is_llm_fast=args.llm_fast)
    from primflow.session.engine_config import EngineConfigError, stack_factory

    try:
        embedded = fake_factory(0.05) if args.fake else embedded_factory(settings)
        factory = stack_factory(args.engines, embedded, settings)
    except EngineConfigError as exc:
        print(f"primflow bench: {exc}", file=sys.stderr)
        return 2
    try:
        cases = asyncio.run(run_benchmark(config, factory, log=_log))
    except (EngineUnavailable, EngineError) as exc:
        print(f"primflow bench: {exc}", file=sys.stderr)
        return 3
    data = write_report(cases, config, args.out, args.name)
    print(result_line(data["targets"], data["ablations"]))
    return 0


def bench_apps(args: argparse.Namespace) -> list[App | str]:
    """``--apps`` (default naive_rag unless specs are given), then each ``--spec``."""
    import_modules(args.imports)
    specs: list[App | str] = [load_spec_app(path) for path in args.spec]
    names: list[App | str] = list(args.apps if args.apps is not None else [])
    if args.apps is None and not specs:
        names = ["naive_rag"]
    apps = [*names, *specs]
    seen: set[str] = set()
    for app in apps:
        name = app if isinstance(app, str) else app.name
        if name in seen:
            raise AppChoiceError(f"two apps are named {name!r}; rename the spec")
        seen.add(name)
    return apps


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def result_line(rows: list[dict[str, Any]], ablations: list[dict[str, Any]] | None = None) -> str:
    """ONE line: the primflow speedups and bound ratio per (workload, placement, app),
    then each ablation's speedup vs full."""
    parts = []
    for r in rows:
        parts.append(
            f"{r['app']}/{r['workload']}/{r['placement']}: "
            f"x{r.get('speedup_vs_sequential', float('nan')):.2f} vs seq, "
            f"x{r.get('speedup_vs_parallel', float('nan')):.2f} vs par, "
            f"latency/bound {r['bound_ratio']:.2f}, overhead {100 * r['overhead_fraction']:.1f}%"
        )
    for a in ablations or []:
        vs_full = a["speedup_vs_full"]
        parts.append(
            f"{a['app']}/{a['workload']}/{a['placement']} {a['ablation']}: "
            f"x{float('nan') if vs_full is None else vs_full:.2f} vs full"
        )
    return "bench_e2e: " + "; ".join(parts)
