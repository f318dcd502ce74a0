"""The ablation table under load: each ablation's Poisson run at the rate the targets
read (the first where sequential's p95 exceeds 3x its single query), against full's."""

from __future__ import annotations

import pytest

from primflow.bench.benchmark import Case
from primflow.bench.report import ablation_markdown, ablation_rows


def case(scheme: str, single_s: float, load: dict[float, tuple[float, float]]) -> Case:
    found = Case("balanced", "shared", "naive_rag", scheme)
    found.single = [
        {"latency_s": single_s, "bound_s": None, "bound_ratio": None, "llm_fraction": 0.5}
    ]
    found.load = [{"rate_qps": r, "mean_s": m, "p95_s": p} for r, (m, p) in load.items()]
    return found


def test_ablations_under_load_are_read_at_the_loaded_rate() -> None:
    cases = [
        # Sequential: single 2 s; p95 passes 3x (6 s) first at 0.5 q/s.
        case("sequential", 2.0, {0.25: (3.0, 5.0), 0.5: (6.0, 9.0)}),
        case("primflow/full", 2.0, {0.25: (2.5, 4.0), 0.5: (4.0, 6.0)}),
        case("primflow/policy_fifo", 2.0, {0.25: (2.6, 4.2), 0.5: (8.0, 12.0)}),
    ]
    rows = {r["ablation"]: r for r in ablation_rows(cases)}
    fifo = rows["policy_fifo"]
    assert (fifo["load_rate_qps"], fifo["load_mean_s"], fifo["load_p95_s"]) == (0.5, 8.0, 12.0)
    assert fifo["load_speedup_vs_full"] == pytest.approx(0.5)
    assert rows["full"]["load_speedup_vs_full"] == pytest.approx(1.0)
    table = "\n".join(ablation_markdown(list(rows.values())))
    assert "| load q/s | load mean s | load p95 s | load vs full |" in table
    assert "| 0.50 | 8.00 | 12.00 | 0.50 |" in table


def test_single_query_ablations_leave_the_load_columns_empty() -> None:
    cases = [case("primflow", 2.0, {}), case("primflow/policy_topology", 2.0, {})]
    (row,) = ablation_rows(cases)
    assert "load_mean_s" not in row
    assert row["ablation"] == "policy_topology"
