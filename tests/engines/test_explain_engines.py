"""Tracing and explain on the real embedded engines (SmolLM2, MiniLM, FAISS), tiny:
the span tree of a real query from the SDK's in-memory exporter, and `primflow
explain` end to end (text, saved JSON, the trace page)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from primflow.apps.samples import sample_documents, samples_dir
from primflow.cli import main
from primflow.explain import Explanation
from primflow.session import EngineStack, Session, embedded_factory

pytestmark = pytest.mark.engines

QUESTION = "How many days of paid annual leave do employees get?"


async def test_span_tree_of_a_real_query() -> None:
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from primflow.tracing.otel import OtelHook

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    stack = EngineStack.for_apps(["naive_rag"], embedded_factory())
    async with stack, Session(stack, hooks=[OtelHook(provider.get_tracer("t"))]) as session:
        answer = await session.ask(
            "naive_rag", QUESTION, sample_documents(), config_changes={"max_tokens": 16}
        )
    spans = exporter.get_finished_spans()
    [root] = [s for s in spans if s.name == "primflow.query"]
    assert root.attributes["primflow.query_id"] == answer.query_id
    primitives = [s for s in spans if s.name.startswith("primflow.primitive ")]
    assert sorted(s.attributes["primflow.node"] for s in primitives) == sorted(
        p.node for p in answer.timing.primitives
    )
    measured = {p.node: p for p in answer.timing.primitives}
    for span in primitives:
        assert span.parent is not None and span.parent.span_id == root.context.span_id
        node = measured[span.attributes["primflow.node"]]
        assert span.attributes["primflow.engine"] == node.engine
        assert span.attributes["primflow.service_s"] == pytest.approx(node.service_s, abs=1e-5)
        assert span.attributes["primflow.queue_wait_s"] == pytest.approx(node.queue_s, abs=1e-5)
        assert span.attributes["primflow.batch.size"] == node.batch_size
    prefills = [s for s in primitives if "prefill" in str(s.attributes["primflow.op"])]
    assert prefills and all(s.attributes["primflow.num_prompt_tokens"] > 0 for s in prefills)
    # Token usage from llama.cpp's own counts: prompt tokens per prefill phase, at most
    # max_tokens generated per answer.
    assert all(s.attributes["gen_ai.usage.input_tokens"] > 0 for s in prefills)
    decodes = [s for s in primitives if s.attributes["primflow.op"] == "llm_decode"]
    assert decodes and all(0 < s.attributes["gen_ai.usage.output_tokens"] <= 16 for s in decodes)
    llm_spans = [s for s in primitives if s.attributes["primflow.engine"] == "llm"]
    assert root.attributes["primflow.num_output_tokens"] == sum(
        s.attributes["gen_ai.usage.output_tokens"] for s in llm_spans
    )
    batches = [s for s in spans if s.name == "primflow.batch"]
    linked = {link.context.span_id for b in batches for link in b.links}
    assert linked == {s.context.span_id for s in primitives}


def test_explain_command_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved, page = tmp_path / "explained.json", tmp_path / "trace.html"
    code = main(
        [
            "explain",
            "naive_rag",
            "--docs",
            str(samples_dir() / "docs"),
            "--question",
            QUESTION,
            "--max-tokens",
            "16",
            "--save",
            str(saved),
            "--html",
            str(page),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "gap to the uncontended bound" in out and "p-graph" in out and "e-graph" in out
    explanation = Explanation.from_json(json.loads(saved.read_text()))
    gap = explanation.gap
    assert gap.bound_s is not None and gap.gap_s is not None
    assert sum(c.seconds for c in gap.causes) == pytest.approx(gap.gap_s, abs=1e-5)
    for p in explanation.primitives:
        assert 0.0 <= p.core_wait_s <= p.end_s - p.start_s + 1e-6
        assert p.solo_s is not None
    assert explanation.passes and explanation.pgraph is not None
    html = page.read_text()
    has_parts = all(f'id="{part}"' in html for part in ("gantt", "pgraph", "egraph"))
    loads_nothing = "<script src=" not in html  # plotly's JavaScript is inlined
    assert has_parts and loads_nothing
