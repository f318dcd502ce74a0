"""`primflow bench --ablations`: the ablation schemes run side by side with primflow and
the baselines on fake engines, and land in the JSON and the Markdown report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from primflow.baselines import ABLATIONS
from primflow.bench.benchmark import BenchConfig, Case, ablation_of, run_benchmark
from primflow.bench.report import ablation_rows, write_report
from primflow.cli import main
from primflow.session.factories import fake_factory


def small_config(**changes: object) -> BenchConfig:
    settings: dict[str, object] = {
        "apps": ["naive_rag"],
        "schemes": ("primflow", "sequential"),
        "workloads": ("balanced",),
        "placements": ("shared",),
        "rates_qps": (),
        "num_questions": 2,
        "ablations": ("full", "no_passes"),
        "ignore_eos": False,  # independent of QueryConfig.ignore_eos
    }
    return BenchConfig(**{**settings, **changes})  # type: ignore[arg-type]


async def run_small(config: BenchConfig) -> list[Case]:
    return await run_benchmark(config, fake_factory(latency_scale=0.01), log=lambda _m: None)


async def test_ablations_run_as_schemes_beside_primflow_and_baselines(tmp_path: Path) -> None:
    cases = await run_small(small_config())
    by_scheme = {c.scheme: c for c in cases}
    assert list(by_scheme) == ["primflow", "sequential", "primflow/full", "primflow/no_passes"]
    assert all(len(c.single) == 2 for c in cases)
    # Every query ran under its own id, across the sessions sharing the engines.
    query_ids = [q["query_id"] for c in cases for q in c.single]
    assert len(set(query_ids)) == len(query_ids)
    # Each ablation ran its own pass set: no passes leaves the p-graph (the nodes
    # sequential ran), the full setting rewrites it like the primflow scheme.
    nodes = {s: {p["node"] for p in c.single[0]["timeline"]} for s, c in by_scheme.items()}
    assert nodes["primflow/no_passes"] == nodes["sequential"]
    assert nodes["primflow/full"] == nodes["primflow"] != nodes["sequential"]
    # The bound comes from the question's sequential run, as for the other schemes.
    assert all(q["bound_s"] is not None for q in by_scheme["primflow/no_passes"].single)

    data = write_report(cases, small_config(), tmp_path, "abl")
    saved = json.loads((tmp_path / "abl.json").read_text())
    assert saved["ablations"] == json.loads(json.dumps(data["ablations"]))
    rows = {r["ablation"]: r for r in saved["ablations"]}
    assert set(rows) == {"full", "no_passes"}
    full_s = by_scheme["primflow/full"].single_stats()["mean_s"]
    no_passes_s = by_scheme["primflow/no_passes"].single_stats()["mean_s"]
    sequential_s = by_scheme["sequential"].single_stats()["mean_s"]
    assert rows["full"]["speedup_vs_full"] == pytest.approx(1.0)
    assert rows["no_passes"]["speedup_vs_full"] == pytest.approx(full_s / no_passes_s)
    assert rows["no_passes"]["speedup_vs_sequential"] == pytest.approx(sequential_s / no_passes_s)
    assert rows["no_passes"]["speedup_vs_parallel"] is None  # parallel did not run
    assert rows["no_passes"]["passes"] == [] and rows["no_passes"]["policy"] == "critical_path"

    report = (tmp_path / "abl.md").read_text()
    assert "## Ablations" in report and "### naive_rag (balanced, shared)" in report
    assert "| no_passes | none | critical_path |" in report
    assert "| full | prune, stages, split, pipe | critical_path |" in report


def test_ratio_to_full_falls_back_to_the_primflow_scheme() -> None:
    def case(scheme: str, latencies: list[float]) -> Case:
        found = Case("balanced", "shared", "naive_rag", scheme)
        found.single = [
            {"latency_s": s, "bound_s": None, "bound_ratio": None, "llm_fraction": 0.5}
            for s in latencies
        ]
        return found

    cases = [case("primflow", [2.0, 2.0]), case("primflow/policy_fifo", [4.0, 4.0])]
    (row,) = ablation_rows(cases)
    assert row["ablation"] == "policy_fifo" and row["policy"] == "fifo"
    assert row["speedup_vs_full"] == pytest.approx(0.5)
    assert row["speedup_vs_sequential"] is None


async def test_ablations_join_the_poisson_runs_only_when_asked() -> None:
    load = {"rates_qps": (50.0,), "num_load_queries": 2, "num_questions": 1}
    plain = await run_small(small_config(ablations=("no_passes",), **load))
    assert {c.scheme: len(c.load) for c in plain} == {
        "primflow": 1,
        "sequential": 1,
        "primflow/no_passes": 0,
    }
    loaded = await run_small(
        small_config(ablations=("no_passes",), is_ablations_under_load=True, **load)
    )
    assert all(len(c.load) == 1 for c in loaded)


def test_unknown_ablation_is_an_error_naming_the_known_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--fake", "--ablations", "no_passes,turbo"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown ablation turbo" in err and "policy_fifo" in err
    with pytest.raises(ValueError, match="unknown ablation turbo; known: full, no_passes"):
        BenchConfig(apps=["naive_rag"], ablations=["turbo"])


def test_ablation_names_all_none_and_repeats() -> None:
    from primflow.commands.bench import _ablations

    assert _ablations("all") == list(ABLATIONS)
    assert _ablations("none") == []
    assert _ablations("no_passes, full,no_passes") == ["no_passes", "full"]
    assert ablation_of("primflow/policy_fifo") == "policy_fifo"
    assert ablation_of("primflow") is None and ablation_of("sequential") is None


def test_fixed_length_answers_ask_for_ignore_eos() -> None:
    on = BenchConfig(apps=["naive_rag"], max_tokens=16).query_changes("cold")
    assert on == {"chunk_size": 120, "chunk_overlap": 10, "max_tokens": 16, "ignore_eos": True}
    off = BenchConfig(apps=["naive_rag"], ignore_eos=False).query_changes("cold")
    assert "ignore_eos" not in off


def test_cli_runs_ablations_with_fixed_and_natural_length(tmp_path: Path) -> None:
    common = [
        "bench",
        "--fake",
        "--apps",
        "naive_rag",
        "--schemes",
        "primflow,sequential",
        "--workloads",
        "balanced",
        "--placements",
        "shared",
        "--num-questions",
        "1",
        "--rates",
        "none",
        "--ablations",
        "without_split_prefill",
        "--out",
        str(tmp_path),
    ]
    assert main([*common, "--name", "fixed"]) == 0
    assert main([*common, "--name", "natural", "--natural-length"]) == 0
    fixed = json.loads((tmp_path / "fixed.json").read_text())
    natural = json.loads((tmp_path / "natural.json").read_text())
    assert fixed["config"]["ignore_eos"] is True and natural["config"]["ignore_eos"] is False
    assert [r["ablation"] for r in fixed["ablations"]] == ["without_split_prefill"]
    assert "| without_split_prefill |" in (tmp_path / "fixed.md").read_text()
