"""Writing the end-to-end benchmark's results: JSON, a Markdown table, PNG plots, the
targets (speedups, bound ratio, overhead) and the ablation table, all computed side by
side from one run.

Ratios are speedups: ``other mean / this mean``, so > 1 means *this* is faster. An
ablation's ratio to ``full`` compares it with the ``primflow/full`` run of the same
questions (or, when ``full`` was not among the ablations, with the ``primflow`` scheme,
which runs the same setting on the main session).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from primflow.baselines import ABLATIONS
from primflow.bench.benchmark import BenchConfig, Case, ablation_of, ablation_scheme

Key = tuple[str, str, str]  # (workload, placement, app)


def _by_key(cases: Sequence[Case]) -> dict[Key, dict[str, Case]]:
    """Cases per (workload, placement, app), by scheme."""
    groups: dict[Key, dict[str, Case]] = {}
    for case in cases:
        groups.setdefault((case.workload, case.placement, case.app), {})[case.scheme] = case
    return groups


def targets(cases: Sequence[Case]) -> list[dict[str, Any]]:
    """Per (workload, placement, app): primflow against each baseline."""
    groups = _by_key(cases)
    rows = []
    for (workload, placement, app), by_scheme in groups.items():
        primflow = by_scheme.get("primflow")
        if primflow is None or not primflow.single:
            continue
        pf = primflow.single_stats()
        row: dict[str, Any] = {
            "workload": workload,
            "placement": placement,
            "app": app,
            "primflow_mean_s": pf["mean_s"],
            "bound_ratio": pf["mean_bound_ratio"],
            "overhead_fraction": pf["mean_overhead_fraction"],
            "llm_fraction": pf["mean_llm_fraction"],
        }
        for name in ("sequential", "parallel"):
            base = by_scheme.get(name)
            if base is None or not base.single:
                continue
            row[f"speedup_vs_{name}"] = base.single_stats()["mean_s"] / pf["mean_s"]
            row.update(_load_speedups(name, primflow, base, by_scheme.get("sequential")))
        rows.append(row)
    return rows


def ablation_rows(cases: Sequence[Case]) -> list[dict[str, Any]]:
    """Per (workload, placement, app) and ablation: its mean single-query latency and
    its speedup over ``full`` and over the baselines (> 1: the ablation is faster)."""
    groups = _by_key(cases)
    rows = []
    for (workload, placement, app), by_scheme in groups.items():
        means = {s: c.single_stats()["mean_s"] for s, c in by_scheme.items() if c.single}
        full_s = means.get(ablation_scheme("full"), means.get("primflow"))
        for scheme, case in by_scheme.items():
            ablation = ablation_of(scheme)
            if ablation is None or scheme not in means:
                continue
            stats = case.single_stats()
            row: dict[str, Any] = {
                "workload": workload,
                "placement": placement,
                "app": app,
                "ablation": ablation,
                "passes": list(ABLATIONS[ablation].passes),
                "policy": ABLATIONS[ablation].policy,
                "mean_s": stats["mean_s"],
                "p95_s": stats["p95_s"],
                "bound_ratio": stats["mean_bound_ratio"],
                "speedup_vs_full": _ratio(full_s, stats["mean_s"]),
            }
            for base in ("sequential", "parallel"):
                row[f"speedup_vs_{base}"] = _ratio(means.get(base), stats["mean_s"])
            row.update(_ablation_load(case, by_scheme))
            rows.append(row)
    return rows


def _ablation_load(case: Case, by_scheme: dict[str, Case]) -> dict[str, Any]:
    """The ablation under load (``--ablations-under-load``): its mean / p95 at the rate
    the targets read (or the highest rate run), and its mean speedup over ``full``."""
    rates = [r["rate_qps"] for r in case.load]
    if not rates:
        return {}
    sequential = by_scheme.get("sequential")
    loaded = _load_speedups("sequential", case, case, sequential).get("load_rate_qps")
    rate = loaded if loaded in rates else max(rates)
    run = next(r for r in case.load if r["rate_qps"] == rate)
    full = by_scheme.get(ablation_scheme("full")) or by_scheme.get("primflow")
    full_run = next((r for r in full.load if r["rate_qps"] == rate), None) if full else None
    return {
        "load_rate_qps": rate,
        "load_mean_s": run["mean_s"],
        "load_p95_s": run["p95_s"],
        "load_speedup_vs_full": _ratio(full_run["mean_s"] if full_run else None, run["mean_s"]),
    }


def _ratio(other_s: float | None, this_s: float) -> float | None:
    return other_s / this_s if other_s is not None and this_s > 0 else None


def _load_speedups(
    name: str, primflow: Case, base: Case, sequential: Case | None
) -> dict[str, Any]:
    """Speedups at the first rate where sequential p95 exceeds 3x its single latency."""
    if sequential is None or not sequential.load:
        return {}
    single_s = sequential.single_stats()["mean_s"]
    loaded = [r for r in sequential.load if r["p95_s"] > 3 * single_s]
    if not loaded:
        return {"load_rate_qps": None}
    rate = loaded[0]["rate_qps"]
    pf = next((r for r in primflow.load if r["rate_qps"] == rate), None)
    other = next((r for r in base.load if r["rate_qps"] == rate), None)
    if pf is None or other is None:
        return {"load_rate_qps": rate}
    return {
        "load_rate_qps": rate,
        f"load_mean_speedup_vs_{name}": other["mean_s"] / pf["mean_s"],
        f"load_p95_speedup_vs_{name}": other["p95_s"] / pf["p95_s"],
    }


def write_report(
    cases: Sequence[Case], config: BenchConfig, out_dir: Path, name: str = "e2e"
) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = targets(cases)
    ablations = ablation_rows(cases)
    data = {
        "config": {  # docs as given on the command line (None: samples/docs)
            k: (list(v) if isinstance(v, tuple | list) else str(v) if isinstance(v, Path) else v)
            for k, v in vars(config).items()
        }
        | {"apps": [app if isinstance(app, str) else app.name for app in config.apps]},
        "targets": rows,
        "ablations": ablations,
        "cases": [case.to_json() for case in cases],
    }
    (out_dir / f"{name}.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    (out_dir / f"{name}.md").write_text(markdown(cases, rows, ablations))
    plot_latency_vs_rate(cases, out_dir / f"{name}_latency_vs_rate.png")
    plot_timelines(cases, out_dir / f"{name}_timeline.png")
    return data


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown(
    cases: Sequence[Case],
    rows: Sequence[dict[str, Any]],
    ablations: Sequence[dict[str, Any]] = (),
) -> str:
    lines = [
        "## Single query (seconds)",
        "",
        "| workload | placement | app | scheme | mean | p50 | p95 | bound | latency/bound | "
        "LLM share |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cases:
        if not c.single:
            continue
        s = c.single_stats()
        lines.append(
            f"| {c.workload} | {c.placement} | {c.app} | {c.scheme} | {_fmt(s['mean_s'])} | "
            f"{_fmt(s['p50_s'])} | {_fmt(s['p95_s'])} | {_fmt(s['mean_bound_s'])} | "
            f"{_fmt(s['mean_bound_ratio'])} | {_fmt(s['mean_llm_fraction'])} |"
        )
    lines += [
        "",
        "## Poisson arrivals (seconds)",
        "",
        "| workload | placement | app | scheme | rate q/s | mean | p95 | done/total |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in cases:
        for r in c.load:
            lines.append(
                f"| {c.workload} | {c.placement} | {c.app} | {c.scheme} | {r['rate_qps']:g} | "
                f"{_fmt(r['mean_s'])} | {_fmt(r['p95_s'])} | "
                f"{r['num_completed']}/{r['num_queries']} |"
            )
    lines += [
        "",
        "## Targets (primflow vs baselines, ratios > 1 mean primflow is faster)",
        "",
        "| workload | placement | app | vs seq | vs par | load rate | load mean vs seq | "
        "load p95 vs seq | load mean vs par | load p95 vs par | latency/bound | "
        "overhead |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['workload']} | {r['placement']} | {r['app']} | "
            f"{_fmt(r.get('speedup_vs_sequential'))} | {_fmt(r.get('speedup_vs_parallel'))} | "
            f"{_fmt(r.get('load_rate_qps'))} | {_fmt(r.get('load_mean_speedup_vs_sequential'))} | "
            f"{_fmt(r.get('load_p95_speedup_vs_sequential'))} | "
            f"{_fmt(r.get('load_mean_speedup_vs_parallel'))} | "
            f"{_fmt(r.get('load_p95_speedup_vs_parallel'))} | {_fmt(r['bound_ratio'])} | "
            f"{_fmt(100 * r['overhead_fraction'], 1)} % |"
        )
    if ablations:
        lines += ["", *ablation_markdown(ablations)]
    return "\n".join(lines) + "\n"


def ablation_markdown(ablations: Sequence[dict[str, Any]]) -> list[str]:
    lines = [
        "## Ablations (single query, and under load with --ablations-under-load; "
        "ratios > 1 mean the ablation is faster)",
        "",
        "Passes: prune = prune_dependencies, stages = decompose_stages, split = "
        "split_prefill, pipe = pipeline_decode.",
    ]
    key: Key | None = None
    for r in ablations:
        if (r["workload"], r["placement"], r["app"]) != key:
            key = (r["workload"], r["placement"], r["app"])
            lines += [
                "",
                f"### {r['app']} ({r['workload']}, {r['placement']})",
                "",
                "| ablation | passes | policy | mean s | p95 s | latency/bound | vs full | "
                "vs seq | vs par | load q/s | load mean s | load p95 s | load vs full |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            ]
        passes = ", ".join(_SHORT_PASS.get(p, p) for p in r["passes"]) or "none"
        lines.append(
            f"| {r['ablation']} | {passes} | {r['policy']} | {_fmt(r['mean_s'])} | "
            f"{_fmt(r['p95_s'])} | {_fmt(r['bound_ratio'])} | {_fmt(r['speedup_vs_full'])} | "
            f"{_fmt(r['speedup_vs_sequential'])} | {_fmt(r['speedup_vs_parallel'])} | "
            f"{_fmt(r.get('load_rate_qps'))} | {_fmt(r.get('load_mean_s'))} | "
            f"{_fmt(r.get('load_p95_s'))} | {_fmt(r.get('load_speedup_vs_full'))} |"
        )
    return lines


_SHORT_PASS = {
    "prune_dependencies": "prune",
    "decompose_stages": "stages",
    "split_prefill": "split",
    "pipeline_decode": "pipe",
}


def plot_latency_vs_rate(cases: Sequence[Case], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[Key, list[Case]] = {}
    for case in cases:
        if case.load:
            groups.setdefault((case.workload, case.placement, case.app), []).append(case)
    if not groups:
        return
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 4), squeeze=False)
    for ax, ((workload, placement, app), group) in zip(axes[0], groups.items(), strict=True):
        for case in group:
            rates = [r["rate_qps"] for r in case.load]
            (line,) = ax.plot(
                rates, [r["mean_s"] for r in case.load], marker="o", label=f"{case.scheme} mean"
            )
            ax.plot(
                rates,
                [r["p95_s"] for r in case.load],
                linestyle="--",
                marker="x",
                color=line.get_color(),
                label=f"{case.scheme} p95",
            )
            if case.scheme == "sequential" and case.single:
                ax.axhline(
                    3 * case.single_stats()["mean_s"],
                    color="gray",
                    linestyle=":",
                    label="3x sequential single query",
                )
        ax.set_title(f"{app} ({workload}, {placement})")
        ax.set_xlabel("request rate (queries/s)")
        ax.set_ylabel("latency (s)")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_timelines(cases: Sequence[Case], path: Path) -> None:
    """One query per app and scheme (the first of the first workload): its primitives."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = {}
    for case in cases:
        key = (case.app, case.scheme)
        # Main schemes only: a panel per ablation would swamp the figure.
        if case.single and key not in shown and ablation_of(case.scheme) is None:
            shown[key] = case.single[0]
    if not shown:
        return
    # Panel heights follow their number of primitives, so labels stay readable.
    heights = [1.0 + 0.16 * len(record["timeline"]) for record in shown.values()]
    fig, axes = plt.subplots(
        len(shown),
        1,
        figsize=(10, sum(heights)),
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )
    for ax, ((app, scheme), record) in zip(axes[:, 0], shown.items(), strict=True):
        timeline = record["timeline"]
        for row, p in enumerate(timeline):
            color = "tab:red" if p.get("on_bound_path") else "tab:blue"
            ax.barh(row, p["end_s"] - p["start_s"], left=p["start_s"], color=color, height=0.8)
        ax.set_yticks(range(len(timeline)), [p["node"] for p in timeline], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(left=0)
        ax.set_title(
            f"{app} / {scheme}: {record['latency_s']:.2f} s (uncontended critical-path "
            f"bound {_fmt(record['bound_s'])} s, red)",
            fontsize=9,
        )
        ax.set_xlabel("seconds since the query arrived")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
