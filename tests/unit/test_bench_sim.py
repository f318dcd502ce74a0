"""The simulator bench scripts' harnesses (fake engines and tiny setups; numbers mean
nothing here, only that both sides run and the JSON holds what the docs read)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_calibration_runs_both_sides_and_resimulates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calibration = _load("bench_sim_calibration")
    name = str(tmp_path / "cal")
    argv = ["bench_sim_calibration.py", "--fake", "--name", name, "--apps", "search_augmented"]
    argv += ["--schemes", "primflow,sequential", "--num-questions", "1"]
    argv += ["--num-load-queries", "2", "--rate", "4"]
    monkeypatch.setattr(sys, "argv", argv)
    assert calibration.main() == 0
    assert capsys.readouterr().out.startswith("bench_sim_calibration: profiles as measured")
    data = json.loads(Path(f"{name}.json").read_text())
    assert [r["scheme"] for r in data["rows_scaled"]] == ["primflow", "sequential"]
    row = data["rows"][0]
    assert row["real_single_s"] > 0 and row["sim_single_s"] > 0 and "load_error" in row
    assert data["machine_scale"] > 0 and "judge" in row["sim_single_engine_s"]
    # The saved real side re-simulates to the same rows.
    monkeypatch.setattr(sys, "argv", [*argv, "--sim-only"])
    assert calibration.main() == 0
    again = json.loads(Path(f"{name}.json").read_text())
    assert again["rows"] == data["rows"] and again["real"] == data["real"]


def test_paper_setup_rows_hold_every_scheme_and_its_command() -> None:
    paper = _load("bench_sim_paper")
    setup = paper.Setup("cluster", "naive_rag", "paper-7b", 2.0, 3.0, {"llm": 2}, 1, 16)
    row = paper.run_setup(setup)
    assert set(row["schemes"]) == {"primflow", "sequential", "parallel"}
    assert row["speedup_vs_sequential"] > 0
    assert row["schemes"]["primflow"]["num_completed"] == row["schemes"]["primflow"]["num_queries"]
    assert "--instances llm=2" in row["command"] and "--max-tokens 16" in row["command"]
    assert len(paper.paper_setups()) == 2 * len(paper.PAPER_APPS)
