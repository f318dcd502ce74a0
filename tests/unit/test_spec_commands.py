"""A user's own spec through every entry point that takes an app, from a temporary
folder: `primflow graph --spec`, `simulate --spec` and `bench --spec --fake` here (no
model); `run --spec` and `bench --spec` on the embedded engines are in
tests/engines/test_user_specs.py. The spec has a custom ``kind: function`` step (a
keyword filter between search and rerank) defined in a module of the folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from user_flow import MODULE, QUESTION, SPEC_NAME, UserFlow, write_user_flow

from primflow.cli import main


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> UserFlow:
    return write_user_flow(tmp_path_factory.mktemp("user_flow"))


def _spec_args(flow: UserFlow) -> list[str]:
    return ["--spec", str(flow.spec), "--import", str(flow.steps)]


def test_graph_prints_the_spec_with_its_function_step(
    flow: UserFlow, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["graph", *_spec_args(flow), "--question", QUESTION, "--docs", str(flow.docs)]
    assert main([*argv, "--format", "json"]) == 0
    graph = json.loads(capsys.readouterr().out)
    ops = {node["name"]: node["op"] for node in graph["nodes"]}
    assert ops["keep"] == "function" and ops["rerank"] == "rerank"
    assert main([*argv, "--optimized"]) == 0  # the passes run on it as on a built-in
    optimized = capsys.readouterr().out
    assert "keep = function[python]" in optimized
    assert "synthesize.decode" in optimized


def test_graph_takes_the_spec_file_as_the_app_argument(
    flow: UserFlow, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["graph", str(flow.spec), "--import", str(flow.steps), "--format", "dot"]
    assert main(argv) == 0  # the sample query: a generic question over the samples
    assert capsys.readouterr().out.startswith(f'digraph "{SPEC_NAME}"')


def test_simulate_runs_the_spec_under_each_scheme(
    flow: UserFlow, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["simulate", *_spec_args(flow), "--question", QUESTION, "--docs", str(flow.docs)]
    argv += ["--rate", "1", "--duration", "6", "--scheme", "primflow,sequential", "--json"]
    assert main(argv) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert [r["info"]["app"] for r in results] == [SPEC_NAME, SPEC_NAME]
    for result in results:
        stats = result["stats"]
        assert stats["num_queries"] > 0 and stats["num_completed"] == stats["num_queries"]


def test_bench_on_fakes_reports_the_spec_app(
    flow: UserFlow, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bench", "--fake", *_spec_args(flow), "--docs", str(flow.docs)]
    argv += ["--questions", str(flow.questions), "--schemes", "primflow,sequential"]
    argv += ["--workloads", "balanced", "--placements", "shared", "--num-questions", "1"]
    argv += ["--rates", "none", "--out", str(tmp_path), "--name", "spec"]
    assert main(argv) == 0
    assert f"bench_e2e: {SPEC_NAME}/balanced/shared" in capsys.readouterr().out
    report = json.loads((tmp_path / "spec.json").read_text())
    assert report["config"]["apps"] == [SPEC_NAME]
    cases = {case["scheme"]: case for case in report["cases"]}
    assert set(cases) == {"primflow", "sequential"}
    (query,) = cases["primflow"]["single_queries"]
    assert query["question"] == QUESTION
    assert "keep" in {p["node"] for p in query["timeline"]}


def test_a_spec_naming_an_unimported_function_says_to_import_it(
    flow: UserFlow, capsys: pytest.CaptureFixture[str]
) -> None:
    other = flow.folder / "other.yaml"
    other.write_text(flow.spec.read_text().replace(MODULE, "nowhere_steps"))
    assert main(["graph", "--spec", str(other)]) == 2
    err = capsys.readouterr().err
    assert str(other) in err and "steps[5] (keep)" in err
    assert "pass --import nowhere_steps" in err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("top_k: 4", "top_k: 0"), "steps[4].top_k: must be > 0"),
        (("kind: rerank", "kind: rerankk"), "steps[6].kind: unknown component 'rerankk'"),
        (("min_shared_words: 1", "min_words: 1"), "has no setting 'min_words'"),
    ],
)
def test_a_bad_spec_names_the_file_and_field_on_every_command(
    flow: UserFlow,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: tuple[str, str],
    message: str,
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(flow.spec.read_text().replace(*change))
    spec = ["--spec", str(bad), "--import", str(flow.steps)]
    commands = [
        ["graph", *spec],
        ["simulate", *spec],
        ["run", *spec, "--docs", str(flow.docs), "--question", QUESTION],
        ["bench", "--fake", *spec, "--out", str(tmp_path)],
    ]
    for argv in commands:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert str(bad) in err and message in err, (argv, err)


def test_app_argument_errors(flow: UserFlow, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", "naive_rag", "--spec", str(flow.spec)]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["graph"]) == 2
    assert "or pass --spec FILE" in capsys.readouterr().err
    missing = flow.folder / "missing.yaml"
    assert main(["run", "--spec", str(missing), "--question", "q?"]) == 2
    assert f"cannot read spec {str(missing)!r}" in capsys.readouterr().err
    nope = flow.folder / "nope.py"
    assert main(["graph", "--import", str(nope), "naive_rag"]) == 2
    assert f"--import {str(nope)!r}: no such file" in capsys.readouterr().err
    assert main(["graph", "--import", "no_such_module_here", "naive_rag"]) == 2
    assert "no module named 'no_such_module_here'" in capsys.readouterr().err


def test_the_guides_keyword_spec_is_the_python_keyword_app(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from primflow.api.lower import lower
    from primflow.apps import spec_app
    from primflow.apps.samples import samples_dir
    from primflow.testing.examples.keyword_rag import KEYWORD_RAG

    spec = samples_dir() / "specs" / "keyword_rag.yaml"
    query = KEYWORD_RAG.query(QUESTION, ["Employees get 25 days of paid annual leave. " * 30])
    assert lower(spec_app(spec).template(), query) == lower(KEYWORD_RAG.template(), query)
    argv = ["graph", "--spec", str(spec), "--import", "primflow.testing.examples.keyword_rag"]
    assert main(argv) == 0  # the command the spec's comment and docs/guide/yaml.md show
    assert "keyword_filter = function[python]" in capsys.readouterr().out
