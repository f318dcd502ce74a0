"""`primflow simulate`: output, JSON, comparison and clear errors."""

from __future__ import annotations

import json

import pytest

from primflow.cli import main
from primflow.commands.simulate import parse_instances


def test_compare_prints_every_policy_for_the_side_calls_scenario(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["simulate", "side_calls", "--rate", "0.2", "--duration", "60", "--compare"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[1]: line.split() for line in out.splitlines()[2:]}
    assert set(rows) == {"fifo", "topology", "critical_path"}
    mean = {policy: float(row[2]) for policy, row in rows.items()}
    assert mean["topology"] < mean["fifo"] and mean["critical_path"] < mean["fifo"]


def test_json_output_for_two_schemes_is_reproducible(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", "naive_rag", "--rate", "1", "--duration", "4", "--seed", "9"]
    argv += ["--scheme", "primflow,sequential", "--instances", "llm=2", "--json"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out) == first
    results = first["results"]
    assert [r["info"]["scheme"] for r in results] == ["primflow", "sequential"]
    assert results[0]["config"]["instances"] == {"llm": 2}
    for key in ("mean_s", "p50_s", "p95_s", "p99_s", "throughput_qps"):
        assert key in results[0]["stats"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nope"], "unknown app or scenario 'nope'"),
        (["naive_rag", "--rate", "-1"], "--rate must be a positive number"),
        (["naive_rag", "--duration", "0"], "--duration must be a positive number"),
        (["naive_rag", "--policy", "lifo"], "unknown policy 'lifo'"),
        (["naive_rag", "--scheme", "magic"], "unknown scheme 'magic'"),
        (["naive_rag", "--instances", "llm=x"], "not a whole number"),
        (["naive_rag", "--instances", "gpu=2"], "names engine 'gpu'"),
        (["naive_rag", "--hardware", "tpu"], "unknown hardware preset 'tpu'"),
        (["naive_rag", "--queries", "random"], "unknown query source 'random'"),
        (["naive_rag", "--seed", "-3"], "--seed must be >= 0"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", *argv]) == 2
    assert message in capsys.readouterr().err


def test_parse_instances() -> None:
    assert parse_instances("llm=2, embedder=1") == {"llm": 2, "embedder": 1}
    assert parse_instances("") == {}
    with pytest.raises(ValueError, match="expected ENGINE=COUNT"):
        parse_instances("llm")
