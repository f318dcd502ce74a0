"""primflow explain on the fakes: the latency path, the gap split, passes, JSON, text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from explain_runs import explain_pair

from primflow.cli import main
from primflow.explain import ExplainFormatError, Explanation, explain_run_json
from primflow.explain.build import engine_parents
from primflow.explain.layout import layered_positions
from primflow.explain.text import format_explanation, side_by_side


async def test_gap_causes_add_up_to_the_gap_along_a_real_latency_path() -> None:
    (first, second), _ = await explain_pair()
    for e in (first, second):
        gap = e.gap
        assert gap.bound_s is not None and gap.gap_s is not None
        # Exact up to the microsecond rounding of the primitives' times.
        assert sum(c.seconds for c in gap.causes) == pytest.approx(gap.gap_s, abs=1e-5)
        assert gap.gap_s == pytest.approx(e.latency_s - gap.bound_s, abs=1e-9)
        rows = {p.node: p for p in e.primitives}
        # The path ends at the last primitive to end, and each step waited on the previous.
        assert e.latency_path[-1] == max(rows.values(), key=lambda p: p.end_s).node
        assert e.egraph is not None
        view_parents = {n["name"]: [] for n in e.egraph.nodes}
        for src, dst, _kind in e.egraph.edges:
            view_parents[dst].append(src)
        for before, after in zip(e.latency_path, e.latency_path[1:], strict=False):
            assert rows[before].end_s <= rows[after].end_s + 1e-9
        assert e.latency_path[0] in rows and all(
            p.is_on_latency_path for p in (rows[n] for n in e.latency_path)
        )


async def test_batches_shared_by_the_concurrent_questions_are_marked() -> None:
    (first, second), _ = await explain_pair()
    shared = [p for p in first.primitives if p.shared_with]
    assert shared, "two concurrent queries on the same engines share some batch"
    assert all(p.shared_with == [second.query_id] for p in shared)
    assert all(p.batch_id is not None for p in first.primitives)


async def test_passes_replay_to_the_graph_that_ran_and_are_listed() -> None:
    (first, _), _ = await explain_pair()
    assert not first.notes  # the replay ended at the graph that ran
    assert [p.pass_name for p in first.passes][:1] == ["prune_dependencies"]
    assert any(p.pass_name == "split_prefill" and p.added and p.removed for p in first.passes)
    assert first.pgraph is not None and first.egraph is not None
    made = {n["name"]: n["pass"] for n in first.egraph.nodes}
    assert {made[name] for p in first.passes for name in p.added} <= {
        p.pass_name for p in first.passes
    }


async def test_per_engine_time_sums_the_primitives() -> None:
    (first, _), _ = await explain_pair()
    for t in first.engines:
        mine = [p for p in first.primitives if p.engine == t.engine]
        assert t.num_primitives == len(mine)
        assert t.busy_s + t.core_wait_s == pytest.approx(sum(p.service_s for p in mine), abs=1e-5)
        assert t.queue_s == pytest.approx(sum(p.queue_s for p in mine), abs=1e-5)


async def test_without_a_reference_causes_add_up_to_the_latency() -> None:
    (first, _), _ = await explain_pair(with_bound=False)
    assert first.gap.gap_s is None and first.gap.bound_s is None
    total = sum(c.seconds for c in first.gap.causes)
    assert total == pytest.approx(first.latency_s, abs=1e-5)
    assert "no uncontended bound" in format_explanation(first)


async def test_json_round_trip_renders_the_same_text(tmp_path: Path) -> None:
    (first, _), _ = await explain_pair()
    saved = json.loads(json.dumps(first.to_json()))
    again = Explanation.from_json(saved)
    assert again == first
    assert format_explanation(again) == format_explanation(first)
    text = format_explanation(first)
    for section in (
        "p-graph",
        "e-graph",
        "what each pass changed",
        "measured critical path",
        "time per engine",
        "gap to the uncontended bound",
    ):
        assert section in text
    path = tmp_path / "saved.json"
    path.write_text(json.dumps(first.to_json()))
    assert main(["explain", "--from-json", str(path)]) == 0


async def test_a_run_json_line_is_explained_without_graphs(tmp_path: Path) -> None:
    (first, _), recorder = await explain_pair()
    recorded = recorder._recorded[first.query_id].answer  # the Answer behind it
    line = recorded.to_json()
    explanation = explain_run_json(json.loads(json.dumps(line)))
    assert explanation.pgraph is None and explanation.passes == []
    assert explanation.latency_path == [n for n in line["critical_path"]]
    assert explanation.gap.gap_s == pytest.approx(line["latency_s"] - line["bound_s"], abs=1e-6)
    assert sum(c.seconds for c in explanation.gap.causes) == pytest.approx(
        explanation.gap.gap_s, abs=1e-5
    )
    path = tmp_path / "run.jsonl"
    path.write_text(json.dumps(line) + "\n")
    assert main(["explain", "--from-json", str(path)]) == 0


def test_bad_saved_files_fail_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ExplainFormatError, match="expected the keys"):
        explain_run_json({"answer": "x"})
    with pytest.raises(ExplainFormatError, match=r"not a primflow\.explain/1"):
        Explanation.from_json({"format": "other"})
    path = tmp_path / "two.jsonl"
    path.write_text('{"a": 1}\n{"b": 2}\n')
    assert main(["explain", "--from-json", str(path)]) == 2
    assert "2 JSON lines" in capsys.readouterr().err
    assert main(["explain", "--from-json", str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["explain", "naive_rag"]) == 2
    assert "--question" in capsys.readouterr().err


def test_layered_layout_puts_every_edge_forward() -> None:
    names = ["a", "b", "c", "d"]
    edges = [("a", "b"), ("b", "d"), ("a", "c"), ("c", "d"), ("a", "d")]
    positions = layered_positions(names, edges)
    assert all(positions[s][0] < positions[d][0] for s, d in edges)
    assert positions["b"][0] == positions["c"][0] and positions["b"] != positions["c"]


def test_side_by_side_pads_the_shorter_column() -> None:
    lines = side_by_side(["a", "b"], ["x"], width=3)
    assert lines == ["a   | x", "b   |"]


def test_engine_parents_look_through_inline_ops() -> None:
    from primflow.api.lower import lower
    from primflow.apps import get_app
    from primflow.passes import optimize

    app = get_app("naive_rag")
    pgraph = lower(app.template(), app.query("q?", ["some text"]))
    assert engine_parents(pgraph)["embed_question"] == ["ingest"]  # an ORDER edge
    parents = engine_parents(optimize(pgraph)[0])
    assert parents["embed_question"] == []  # only an INPUT before it, once pruned
    assert parents["ingest"] == ["embed_docs"]
