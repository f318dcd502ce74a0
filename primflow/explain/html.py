"""The trace page: a standalone HTML file that needs no network.

Plotly draws everything (its JavaScript is inlined once, from the ``plotly`` wheel):
a Gantt chart of the query's primitives, one bar per primitive in a row per
primitive grouped by engine (the latency path's bars red, bars of batches shared with
other queries hatched, hover for the numbers), then the p-graph and the e-graph one
above the other (nodes coloured by engine, the e-graph's latency path outlined), then the gap
to the uncontended bound and the time per engine as tables. Needs the ``explain``
extra (plotly).
"""

from __future__ import annotations

import html
import json
from typing import Any

from primflow.explain.layout import layered_positions
from primflow.explain.model import Explanation, GraphView, PrimitiveView

CRITICAL_COLOR = "#d62728"
CRITICAL_PATH_NAME = "critical path (what the query waited for)"
ENGINE_COLORS = ("#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f")
PLOT_CONFIG = {"displaylogo": False, "responsive": True}
# Horizontal room per node of a graph's widest layer (its label is right of it).
LABEL_WIDTH_PX = 190
# Bars shorter than this share of the timeline are widened to stay visible.
MIN_BAR_SHARE = 0.004


class PlotlyUnavailable(RuntimeError):
    """The page needs plotly (the ``explain`` extra)."""


def _plotly() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError as exc:
        raise PlotlyUnavailable(
            "the trace page needs plotly: pip install 'primflow[explain]'"
        ) from exc
    return go


def _engine_colors(explanation: Explanation) -> dict[str, str]:
    engines = sorted({str(p.engine) for p in explanation.primitives})
    return {e: ENGINE_COLORS[i % len(ENGINE_COLORS)] for i, e in enumerate(engines)}


def _hover(p: PrimitiveView) -> str:
    shared = f"<br>batch shared with {', '.join(p.shared_with)}" if p.shared_with else ""
    alone = f"<br>alone {p.solo_s:.3f} s" if p.solo_s is not None else ""
    batch = f"#{p.batch_id} " if p.batch_id is not None else ""
    return (
        f"<b>{html.escape(p.node)}</b> ({p.op} on {p.engine})<br>"
        f"ready {p.ready_s:.3f} s, start {p.start_s:.3f} s, end {p.end_s:.3f} s<br>"
        f"queue {p.queue_s:.3f} s, service {p.service_s:.3f} s, "
        f"waiting for cores {p.core_wait_s:.3f} s{alone}<br>"
        f"batch {batch}of {p.batch_size}{shared}<br>made by {p.pass_name or 'lowering'}"
    )


def gantt_figure(explanation: Explanation) -> Any:
    go = _plotly()
    colors = _engine_colors(explanation)
    rows = sorted(explanation.primitives, key=lambda p: (str(p.engine), p.start_s, p.node))

    span_s = max((p.end_s for p in rows), default=1.0) or 1.0
    figure = go.Figure()
    groups = [(f"engine {e}", color, False) for e, color in colors.items()]
    groups.append((CRITICAL_PATH_NAME, CRITICAL_COLOR, True))
    for name, color, is_path in groups:
        members = [
            p
            for p in rows
            if p.is_on_latency_path == is_path and (is_path or name == f"engine {p.engine}")
        ]
        if not members:
            continue
        figure.add_trace(
            go.Bar(
                name=name,
                orientation="h",
                y=[f"{p.engine} | {p.node}" for p in members],
                base=[p.start_s for p in members],
                x=[max(p.end_s - p.start_s, span_s * MIN_BAR_SHARE) for p in members],
                marker={
                    "color": color,
                    "line": {"color": "#222", "width": 1.5 if is_path else 0.5},
                    "pattern": {
                        "shape": ["/" if p.shared_with else "" for p in members],
                        "fgcolor": "#222",
                        "fillmode": "overlay",
                    },
                },
                customdata=[p.node for p in members],
                hovertext=[_hover(p) for p in members],
                hoverinfo="text",
            )
        )
    figure.update_layout(
        title="Primitives by engine (red: the latency path; hatched: batch shared with "
        "other queries)",
        barmode="overlay",
        xaxis_title="seconds from the query's start",
        yaxis={
            "categoryorder": "array",
            "categoryarray": [f"{p.engine} | {p.node}" for p in reversed(rows)],
            "automargin": True,
        },
        height=max(320, 26 * len(rows) + 140),
        margin={"l": 20, "r": 20, "t": 60, "b": 50},
        legend={"orientation": "h", "y": -0.12},
    )
    return figure


def graph_figure(view: GraphView, title: str, colors: dict[str, str], highlighted: set[str]) -> Any:
    go = _plotly()
    names = [str(n["name"]) for n in view.nodes]
    layered = layered_positions(names, [(s, d) for s, d, _ in view.edges])
    # Top to bottom (a layer per row), so the long LLM chains do not overlap labels.
    positions = {n: (x_y[1], -x_y[0]) for n, x_y in layered.items()}
    num_layers = 1 + int(max((x for x, _ in layered.values()), default=0))
    widest = max(sum(1 for x, _ in layered.values() if x == i) for i in range(num_layers))
    figure = go.Figure()
    for kind, dash in (("data", "solid"), ("order", "dot")):
        xs: list[float | None] = []
        ys: list[float | None] = []
        for src, dst, edge_kind in view.edges:
            if edge_kind == kind and src in positions and dst in positions:
                xs += [positions[src][0], positions[dst][0], None]
                ys += [positions[src][1], positions[dst][1], None]
        if xs:
            figure.add_trace(
                go.Scatter(
                    x=xs,
                    y=ys,
                    mode="lines",
                    name=f"{kind} edges",
                    line={"color": "#999", "width": 1, "dash": dash},
                    hoverinfo="skip",
                )
            )
    figure.add_trace(
        go.Scatter(
            x=[positions[n][0] for n in names],
            y=[positions[n][1] for n in names],
            mode="markers+text",
            name="nodes",
            text=names,
            textposition="middle right",
            textfont={"size": 9},
            marker={
                "size": 12,
                "color": [colors.get(str(n["engine"]), "#ccc") for n in view.nodes],
                "line": {
                    "color": [CRITICAL_COLOR if n in highlighted else "#333" for n in names],
                    "width": [3 if n in highlighted else 1 for n in names],
                },
            },
            hovertext=[
                f"{html.escape(str(n['name']))}<br>{n['op']} on {n['engine'] or 'inline'}"
                f"<br>from {html.escape(str(n['source']))} by {n['pass'] or 'lowering'}"
                for n in view.nodes
            ],
            hoverinfo="text",
        )
    )
    figure.update_layout(
        title=title,
        showlegend=False,
        xaxis={"visible": False},
        yaxis={"visible": False},
        height=max(360, int(48 * num_layers) + 80),
        width=max(640, LABEL_WIDTH_PX * widest + 120),
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return figure


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _div(figure: Any, div_id: str, *, is_responsive: bool = True) -> str:
    config = {**PLOT_CONFIG, "responsive": is_responsive}
    div: str = figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=config)
    return div


def render_page(explanation: Explanation) -> str:
    """The whole standalone page (a few MB: plotly's JavaScript is inlined)."""
    _plotly()
    from plotly.offline import get_plotlyjs

    e = explanation
    colors = _engine_colors(e)
    on_path = set(e.latency_path)
    graphs = []
    for view, title in ((e.pgraph, "p-graph (as lowered)"), (e.egraph, "e-graph (as run)")):
        if view is not None:
            div_id = "pgraph" if view is e.pgraph else "egraph"
            highlighted = on_path if view is e.egraph else set()
            figure = graph_figure(view, title, colors, highlighted)
            graphs.append(f"<div class='graph'>{_div(figure, div_id, is_responsive=False)}</div>")
    gap = e.gap
    if gap.bound_s is not None and gap.gap_s is not None:
        summary = (
            f"latency {e.latency_s:.3f} s, uncontended bound {gap.bound_s:.3f} s, "
            f"gap {gap.gap_s:.3f} s"
        )
    else:
        summary = f"latency {e.latency_s:.3f} s (no uncontended bound: no reference run)"
    causes = _table(
        ["cause", "seconds", "what"],
        [[c.cause, f"{c.seconds:.3f}", c.detail] for c in gap.causes],
    )
    engines = _table(
        ["engine", "primitives", "busy s", "waiting for cores s", "queue s", "shared batches"],
        [
            [
                t.engine,
                str(t.num_primitives),
                f"{t.busy_s:.3f}",
                f"{t.core_wait_s:.3f}",
                f"{t.queue_s:.3f}",
                str(t.num_shared_batches),
            ]
            for t in e.engines
        ],
    )
    passes = _table(
        ["round", "pass", "changed"], [[str(p.round), p.pass_name, p.summary] for p in e.passes]
    )
    notes = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in e.notes)
    summary_data = {"query_id": e.query_id, "num_primitives": len(e.primitives)}
    data = json.dumps(summary_data).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>primflow trace {html.escape(e.query_id)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
.graph {{ overflow-x: auto; margin-bottom: 1em; }}
table {{ border-collapse: collapse; margin: .5em 0 1.5em; }}
td, th {{ border: 1px solid #ccc; padding: .2em .6em; text-align: left; }}
.note {{ color: #666; }}
</style>
<script type="text/javascript">{get_plotlyjs()}</script>
<script type="application/json" id="primflow-trace">{data}</script>
</head><body>
<h1>{html.escape(e.app)}: {html.escape(e.question)}</h1>
<p>query {html.escape(e.query_id)} ({html.escape(e.scheme)}): {summary};
lowering {e.lower_s * 1e3:.1f} ms, optimization {e.optimize_s * 1e3:.1f} ms</p>
{_div(gantt_figure(e), "gantt")}
<h2>Gap by cause, along the latency path</h2>
<p>{html.escape(" -> ".join(e.latency_path))}</p>
{causes}
<h2>Time per engine</h2>
{engines}
<h2>Graphs</h2>
{"".join(graphs)}
<h2>What each pass changed</h2>
{passes}
{notes}
</body></html>
"""
