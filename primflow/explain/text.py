"""The plain-text explanation: graphs side by side, passes, timeline, engines, gap."""

from __future__ import annotations

from itertools import zip_longest

from primflow.explain.model import Explanation, GraphView

COLUMN_WIDTH = 52


def _graph_lines(view: GraphView | None, title: str, *, with_pass: bool) -> list[str]:
    if view is None:
        return [f"{title}: not recorded"]
    lines = [f"{title} ({len(view.nodes)} nodes, {len(view.edges)} edges)"]
    for node in view.nodes:
        where = f"@{node['engine']}" if node["engine"] else ""
        made_by = f" <{node['pass']}" if with_pass and node.get("pass") else ""
        lines.append(f"  {node['name']} [{node['op']}{where}]{made_by}")
    return lines


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def side_by_side(left: list[str], right: list[str], width: int = COLUMN_WIDTH) -> list[str]:
    return [
        f"{_fit(a, width):<{width}} | {b}".rstrip()
        for a, b in zip_longest(left, right, fillvalue="")
    ]


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def format_explanation(explanation: Explanation) -> str:
    e = explanation
    gap = e.gap
    lines = [f"{e.app} ({e.scheme}), query {e.query_id}: {e.question}"]
    if gap.bound_s is not None and gap.gap_s is not None:
        ratio = e.latency_s / gap.bound_s if gap.bound_s else float("nan")
        lines.append(
            f"latency {e.latency_s:.3f} s; uncontended bound {gap.bound_s:.3f} s "
            f"(ratio {ratio:.2f}); gap {gap.gap_s:.3f} s"
        )
    else:
        lines.append(f"latency {e.latency_s:.3f} s; no uncontended bound (no reference run)")
    lines.append(f"lowering {e.lower_s * 1e3:.1f} ms, optimization {e.optimize_s * 1e3:.1f} ms")
    lines += ["", "== graphs (e-graph nodes: <pass that made them) =="]
    lines += side_by_side(
        _graph_lines(e.pgraph, "p-graph", with_pass=False),
        _graph_lines(e.egraph, "e-graph", with_pass=True),
    )
    lines += ["", "== what each pass changed =="]
    if e.passes:
        lines += [f"  round {p.round} {p.pass_name}: {p.summary}" for p in e.passes]
    elif e.pgraph is None:
        lines.append("  not recorded")
    else:
        lines.append("  nothing (the p-graph ran as lowered)")
    lines += ["", "== primitives (s from the query's start; * measured critical path) =="]
    lines.append(
        f"  {'primitive':<30} {'engine':<10} {'start':>6} {'queue':>6} {'service':>7} "
        f"{'cores':>6} {'alone':>6}  batch"
    )
    for p in e.primitives:
        mark = "*" if p.is_critical else " "
        batch = f"#{p.batch_id} x{p.batch_size}" if p.batch_id is not None else f"x{p.batch_size}"
        if p.shared_with:
            batch += f" shared with {', '.join(p.shared_with)}"
        lines.append(
            f"{mark} {_fit(p.node, 30):<30} {_fit(str(p.engine), 10):<10} {p.start_s:>6.3f} "
            f"{p.queue_s:>6.3f} {p.service_s:>7.3f} {p.core_wait_s:>6.3f} {_s(p.solo_s):>6}  "
            f"{batch}"
        )
    lines += ["", f"== measured critical path: {e.critical_path_s:.3f} s of service time =="]
    lines.append("  " + " -> ".join(e.critical_path))
    if e.bound_path:
        lines.append(f"  uncontended bound path: {' -> '.join(e.bound_path)}")
    lines += ["", "== time per engine (sums over this query's primitives, s) =="]
    lines.append(
        f"  {'engine':<12} {'prims':>5} {'busy':>7} {'cores':>7} {'queue':>7} {'shared':>6}"
    )
    for t in e.engines:
        lines.append(
            f"  {_fit(t.engine, 12):<12} {t.num_primitives:>5} {t.busy_s:>7.3f} "
            f"{t.core_wait_s:>7.3f} {t.queue_s:>7.3f} {t.num_shared_batches:>6}"
        )
    lines.append("  busy: running; cores: waiting for cores; queue: waiting to be handed over")
    title = "gap to the uncontended bound" if gap.gap_s is not None else "where the latency went"
    total = gap.gap_s if gap.gap_s is not None else e.latency_s
    lines += ["", f"== {title}: {total:.3f} s, along the latency path =="]
    lines.append("  " + " -> ".join(e.latency_path))
    for cause in gap.causes:
        lines.append(f"  {cause.cause:<28} {cause.seconds:>7.3f} s  {cause.detail}")
    if e.notes:
        lines += ["", *(f"note: {n}" for n in e.notes)]
    return "\n".join(lines) + "\n"
