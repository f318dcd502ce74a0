"""The docs' generated parts match the code: the graph pictures are what
docs/gen_graphs.py writes now, and the custom-application example runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from primflow.testing.clock import run_virtual

DOCS = Path(__file__).resolve().parents[2] / "docs"


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_graph_pictures_are_what_the_script_writes() -> None:
    gen_graphs = load(DOCS / "gen_graphs.py")
    expected = gen_graphs.render_all()
    committed = {p.name: p.read_text(encoding="utf-8") for p in gen_graphs.OUT_DIR.glob("*.mmd")}
    assert sorted(committed) == sorted(expected), "run: .venv/bin/python docs/gen_graphs.py"
    stale = [name for name, text in expected.items() if committed[name] != text]
    assert not stale, f"stale pictures {stale}; run: .venv/bin/python docs/gen_graphs.py"


def test_each_pass_picture_shows_a_change() -> None:
    rendered = load(DOCS / "gen_graphs.py").render_all()
    for stem in ("prune", "split_prefill", "pipeline_decode", "decompose"):
        assert rendered[f"{stem}_before.mmd"] != rendered[f"{stem}_after.mmd"], stem


def test_custom_app_example_answers_on_fake_engines() -> None:
    example = load(DOCS / "examples" / "custom_app.py")
    samples = DOCS.parent / "samples" / "docs"
    question = "How long is the warranty?"
    result = run_virtual(example.ask(example.build(), question, str(samples), is_fake=True))
    assert isinstance(result.outputs["answer"], str) and result.outputs["answer"]
    assert len(result.outputs["hits"]) == 2  # the reranker keeps its top_k of the 6 found
    assert "answer.decode" in result.timings and "rerank" in result.timings


def test_custom_app_example_runs_a_yaml_spec_on_fake_engines() -> None:
    example = load(DOCS / "examples" / "custom_app.py")
    root = DOCS.parent
    template = example.load_spec(root / "samples" / "specs" / "naive_rag.yaml")
    result = run_virtual(
        example.ask(template, "Paid leave?", str(root / "samples" / "docs"), is_fake=True)
    )
    assert result.outputs["answer"] and result.outputs["hits"]
