"""Writes the graph pictures of the docs (Mermaid) from the code as it is now.

Every picture is printed by :func:`primflow.graph.printers.to_mermaid`, the printer
behind ``primflow graph --format mermaid``, from a graph that primflow lowers and
optimizes itself; nothing is drawn by hand. ``tests/unit/test_docs_graphs.py`` fails when
a committed picture differs from what this script writes now, so they cannot go stale.

Run from the repository root after changing lowering, a pass or an app::

    .venv/bin/python docs/gen_graphs.py
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from primflow.api import ChunkDocuments, Embed, Ingest, Query, build_template, lower
from primflow.apps import get_app
from primflow.commands.graph import build_graph
from primflow.graph.ir import Graph
from primflow.graph.printers import to_mermaid
from primflow.passes import decompose_stages, pipeline_decode, prune_dependencies, split_prefill
from primflow.sim.profiles import GPU_PROFILES

OUT_DIR = Path(__file__).parent / "concepts" / "graphs"


def app_graph(app_name: str, **config_changes: object) -> Graph:
    """The p-graph of an app's sample query, with ``config_changes`` applied."""
    app = get_app(app_name)
    query = app.sample_query()
    return lower(
        app.template(),
        Query(query.question, query.documents, query.config.with_changes(**config_changes)),
    )


def cli_graph(app_name: str, *, is_optimized: bool) -> Graph:
    """Exactly what ``primflow graph APP [--optimized]`` prints."""
    args = argparse.Namespace(
        app=app_name, optimized=is_optimized, question=None, docs=None, profiles=None
    )
    return build_graph(args)


def indexing_graph() -> Graph:
    """Chunk -> embed -> ingest of advanced_rag's sample documents (304 chunks)."""
    flow = (
        ChunkDocuments(chunks="chunks")
        >> Embed("embed_docs", items="chunks", vectors="doc_vectors")
        >> Ingest(chunks="chunks", vectors="doc_vectors", index="index")
    )
    template = build_template("indexing", flow, outputs={"index": "index"})
    return lower(template, get_app("advanced_rag").sample_query())


def naive() -> Graph:
    """naive_rag with one-shot synthesis: the smallest graph the first passes change."""
    return app_graph("naive_rag", synthesis_mode="one_shot")


def advanced() -> Graph:
    """advanced_rag with one-shot synthesis: query expansion feeds per-query retrieval."""
    return app_graph("advanced_rag", synthesis_mode="one_shot")


def pictures() -> dict[str, Callable[[], Graph]]:
    """File stem -> graph. Each pass is shown alone on the smallest graph it changes."""
    return {
        "advanced_rag_pgraph": lambda: cli_graph("advanced_rag", is_optimized=False),
        "advanced_rag_egraph": lambda: cli_graph("advanced_rag", is_optimized=True),
        "prune_before": naive,
        "prune_after": lambda: prune_dependencies(naive()),
        "split_prefill_before": lambda: prune_dependencies(naive()),
        "split_prefill_after": lambda: split_prefill(prune_dependencies(naive())),
        "pipeline_decode_before": lambda: prune_dependencies(advanced()),
        "pipeline_decode_after": lambda: pipeline_decode(prune_dependencies(advanced())),
        "decompose_before": indexing_graph,
        "decompose_after": lambda: decompose_stages(indexing_graph(), GPU_PROFILES),
    }


def render_all() -> dict[str, str]:
    """File name -> Mermaid text, for every picture."""
    return {f"{stem}.mmd": to_mermaid(make()) for stem, make in pictures().items()}


def main() -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in render_all().items():
        (OUT_DIR / name).write_text(text, encoding="utf-8")
        print(f"wrote {OUT_DIR / name}")


if __name__ == "__main__":
    main()
