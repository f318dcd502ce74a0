"""The paper's applications: registry, sample queries, golden p-graphs and e-graphs, the
`primflow graph` command, and the done-criterion shape of optimized advanced RAG.

Golden files live in tests/golden/. After an intended change to lowering, the passes or
the printers, regenerate them with ``PRIMFLOW_UPDATE_GOLDEN=1 pytest tests/unit/test_apps.py``
and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from primflow.api.lower import lower_query
from primflow.apps import APPS, UnknownAppError, get_app
from primflow.apps.samples import samples_dir
from primflow.cli import main
from primflow.engines.profile import DEFAULT_PROFILES, LatencyProfile, save_profiles
from primflow.graph import ops
from primflow.graph.ir import EdgeKind, Graph, Op
from primflow.graph.lint import lint
from primflow.graph.printers import to_text
from primflow.passes import OptimizeReport, optimize
from primflow.sim.profiles import preset

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden"
IS_UPDATING = os.environ.get("PRIMFLOW_UPDATE_GOLDEN") == "1"


def _pgraph(name: str) -> Graph:
    """The sample's p-graph; an app with a loop grown whole with its sample decisions."""
    app = get_app(name)
    lowered = lower_query(app.template(), app.sample_query())
    if lowered.growth is None:
        return lowered.graph
    lowered.growth.attach(lowered.graph)
    return lowered.growth.unroll(app.sample_decisions)


def _egraph(name: str, profiles: dict[str, LatencyProfile] | None = None) -> Graph:
    """The sample's e-graph; a loop's rounds optimized one by one as they are appended."""
    app = get_app(name)
    lowered = lower_query(app.template(), app.sample_query())
    graph, _ = optimize(lowered.graph, profiles, lint_each=True)
    if lowered.growth is None:
        return graph

    def optimize_round(round_graph: Graph, _key: str) -> tuple[Graph, OptimizeReport]:
        return optimize(round_graph, profiles, lint_each=True)

    lowered.growth.attach(graph, optimize_round)
    return lowered.growth.unroll(app.sample_decisions)


def _check_golden(file_name: str, text: str) -> None:
    path = GOLDEN_DIR / file_name
    if IS_UPDATING:
        path.write_text(text)
    assert path.exists(), f"{path} is missing; run with PRIMFLOW_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{file_name} changed; see tests/unit/test_apps.py"


def test_registry_knows_the_apps() -> None:
    assert list(APPS) == [
        "naive_rag",
        "advanced_rag",
        "search_augmented",
        "contextual_retrieval",
        "multi_hop_rag",
        "corrective_rag",
        "tool_agent",
    ]
    with pytest.raises(UnknownAppError, match="unknown app 'rag'; known apps: naive_rag, adv"):
        get_app("rag")


@pytest.mark.parametrize("name", list(APPS))
def test_sample_query_lowers_to_a_clean_graph(name: str) -> None:
    graph = _pgraph(name)
    lint(graph)
    # multi_hop_rag's hits are the passages its answer read; it also outputs all it held.
    extra = {"evidence"} if name == "multi_hop_rag" else set()
    keys = {n.params["key"] for n in graph.nodes_with_op(Op.OUTPUT)}
    assert keys == {"answer", "hits"} | extra


@pytest.mark.parametrize("name", list(APPS))
def test_pgraph_golden(name: str) -> None:
    _check_golden(f"{name}.pgraph.txt", to_text(_pgraph(name)))


@pytest.mark.parametrize("name", list(APPS))
def test_egraph_golden(name: str) -> None:
    _check_golden(f"{name}.egraph.txt", to_text(_egraph(name)))


def test_sample_questions_point_at_sources_that_hold_the_answer() -> None:
    lines = (samples_dir() / "questions.jsonl").read_text().splitlines()
    assert len(lines) >= 10
    for line in lines:
        record = json.loads(line)
        source = samples_dir() / "docs" / record["source"]
        assert record["answer_contains"] in source.read_text(), record


def test_web_corpus_records_have_url_title_and_text() -> None:
    files = sorted((samples_dir() / "web").glob("*.jsonl"))
    records = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert len(records) >= 20
    assert all({"url", "title", "text"} <= r.keys() and r["text"] for r in records)


# -- the done-criterion: optimized advanced RAG -------------------------------


def _descendants(graph: Graph, name: str) -> set[str]:
    seen: set[str] = set()
    stack = [name]
    while stack:
        for child in graph.children(stack.pop()):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


def test_optimized_advanced_rag_has_the_paper_shape() -> None:
    # The paper's shape is for its hardware: the GPU preset, where ingesting into
    # pgvector is slow enough per chunk that pipelining embedding into it pays.
    graph = _egraph("advanced_rag", preset("gpu"))
    by_origin: dict[str, list[str]] = {}
    for node in graph:
        by_origin.setdefault(node.origin, []).append(node.name)
    # document indexing is independent of query expansion (both ways)
    expansion = [n.name for n in graph if n.origin == "expand"]
    indexing = by_origin["embed_docs"] + [
        n for n in by_origin["ingest"] if graph.node(n).op is Op.VECTOR_INGEST
    ]
    for name in expansion:
        assert not set(indexing) & _descendants(graph, name)
    for name in indexing:
        assert not set(expansion) & _descendants(graph, name)
    # document embedding is split into pipelined stages, each feeding its own ingest
    stages = [graph.node(n) for n in by_origin["embed_docs"]]
    assert len(stages) > 1 and all(s.op is Op.EMBED for s in stages)
    for stage in stages:
        assert [graph.node(c).op for c in graph.children(stage.name)] == [Op.VECTOR_INGEST]
    # the synthesis prompt is split into a partial and a full prefill
    synth_ops = {graph.node(n).op for n in by_origin["synthesize"]}
    assert {Op.LLM_PARTIAL_PREFILL, Op.LLM_FULL_PREFILL} <= synth_ops
    # one partial decode per expanded query, each feeding its own embed -> search -> rerank
    partials = graph.nodes_with_op(Op.LLM_PARTIAL_DECODE)
    assert len(partials) == get_app("advanced_rag").default_config.num_expansions
    for partial in partials:
        chain = [partial.name]
        for expected in (Op.EMBED, Op.VECTOR_SEARCH, Op.RERANK):
            children = [
                e.dst
                for e in graph.out_edges(chain[-1])
                if e.kind is EdgeKind.DATA and graph.node(e.dst).op is expected
            ]
            assert len(children) == 1, (chain, expected)
            chain.append(children[0])
        assert graph.node(chain[1]).input(ops.ITEMS).num_items == 1


def test_cpu_defaults_keep_document_embedding_one_batch() -> None:
    # On this CPU the vector index ingests in ~0.2 ms per chunk: pipelining into it
    # saves ~1 % in the model, less than splitting costs the embedder (docs/architecture.md).
    graph = _egraph("advanced_rag")
    embeds = [n for n in graph if n.origin == "embed_docs"]
    assert [n.name for n in embeds] == ["embed_docs"]
    assert (
        graph.node("embed_docs").input(ops.ITEMS).num_items
        == _pgraph("advanced_rag").node("embed_docs").input(ops.ITEMS).num_items
    )
    # The rest of the paper's rewrites still apply.
    assert len(graph.nodes_with_op(Op.LLM_PARTIAL_DECODE)) == 3


# -- the command ----------------------------------------------------------------------


def test_graph_command_json_lists_nodes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", "advanced_rag", "--optimized", "--format", "json"]) == 0
    nodes = json.loads(capsys.readouterr().out)["nodes"]
    assert {"name", "op", "parents", "engine"} <= nodes[0].keys()
    names = {n["name"] for n in nodes}
    assert all(p in names for n in nodes for p in n["parents"])
    assert sum(n["op"] == "llm_partial_decode" for n in nodes) == 3


@pytest.mark.parametrize(
    ("fmt", "start"), [("text", "input."), ("dot", "digraph"), ("mermaid", "flowchart")]
)
def test_graph_command_formats(fmt: str, start: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", "naive_rag", "--format", fmt]) == 0
    assert capsys.readouterr().out.startswith(start)


def test_graph_command_text_matches_golden(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", "advanced_rag", "--optimized"]) == 0
    assert capsys.readouterr().out == (GOLDEN_DIR / "advanced_rag.egraph.txt").read_text()


def test_graph_command_with_own_question_and_docs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.txt").write_text("Short document. " * 10)
    assert main(["graph", "naive_rag", "--docs", str(tmp_path), "--question", "What?"]) == 0
    assert "value:chunks(1)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["graph", "nope"], "unknown app 'nope'; known apps: naive_rag"),
        (["graph", "naive_rag", "--docs", "does/not/exist"], "does not exist"),
    ],
)
def test_graph_command_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_graph_command_uses_given_profiles(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "profiles.json"
    # An index as slow per chunk as the embedder: pipelining pays, so stages appear.
    costly_index = LatencyProfile(base_s=0.0005, per_item_s=0.012, efficient_batch_size=128)
    embedder = DEFAULT_PROFILES["embedder"]
    save_profiles({"embedder": embedder, "vector_index": costly_index}, path)
    assert main(["graph", "advanced_rag", "--optimized", "--profiles", str(path)]) == 0
    assert "embed_docs.s0" in capsys.readouterr().out
    big_batch = embedder.with_changes(efficient_batch_size=1000)
    save_profiles({"embedder": big_batch, "vector_index": costly_index}, path)
    assert main(["graph", "advanced_rag", "--optimized", "--profiles", str(path)]) == 0
    out = capsys.readouterr().out
    assert "embed_docs.s0" not in out  # one batch fits: no stages
    assert "llm_partial_decode" in out
    assert main(["graph", "naive_rag", "--optimized", "--profiles", str(tmp_path / "no")]) == 2
    assert "No such file" in capsys.readouterr().err
