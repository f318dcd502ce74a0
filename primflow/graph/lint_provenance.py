"""Checks that a rewrite kept every node's provenance consistent.

This module owns :func:`check_provenance` (``before`` rewritten into ``after``): the
rules passes must keep so the runtime's stage chains and the solo bound, which read
provenance and never names, stay right. Like :mod:`primflow.graph.lint`, it collects
every problem before raising, names the node at fault, and never changes a graph.

Rules:

- every node of ``after`` derives from a source some node of ``before`` derives from
  (a rewrite never invents work);
- a node's share is in (0, 1], and the shares of one source's engine nodes add up to
  the same total after as before (1 for a lowered p-graph): pieces cover their
  source's work exactly once;
- the stages of one chain (same source and ``Stage.chain``) agree on ``num_stages`` k
  and hold each index below k at most once (a stage that a later round decomposes
  again leaves a gap in its chain: its pieces form a chain of their own).
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction

from primflow.graph.ir import INLINE_OPS, Graph, Node
from primflow.graph.lint import LintError


def check_provenance(before: Graph, after: Graph) -> None:
    """Raise :class:`~primflow.graph.lint.LintError` listing every provenance rule the
    rewrite of ``before`` into ``after`` breaks."""
    problems = find_provenance_problems(before, after)
    if problems:
        raise LintError(problems)


def find_provenance_problems(before: Graph, after: Graph) -> list[str]:
    """Every provenance rule ``after`` breaks, in a deterministic order."""
    known = {node.source for node in before}
    problems = [
        f"node {n.name!r} derives from {n.source!r}, which no node it was rewritten from does"
        for n in after
        if n.source not in known
    ]
    problems.extend(
        f"node {n.name!r} has share {n.provenance.share}, outside (0, 1]"
        for n in after
        if not 0 < n.provenance.share <= 1
    )
    old_totals, new_totals = engine_shares(before), engine_shares(after)
    problems.extend(
        f"engine nodes from {source!r} hold {new_totals.get(source, 0)} of its work, "
        f"{old_totals.get(source, 0)} before the rewrite"
        for source in sorted(old_totals.keys() | new_totals.keys())
        if old_totals.get(source, 0) != new_totals.get(source, 0)
    )
    problems.extend(_stage_problems(after))
    return problems


def engine_shares(graph: Graph) -> dict[str, Fraction]:
    """The summed share of each source's engine (non-inline) nodes."""
    totals: dict[str, Fraction] = {}
    for node in graph:
        if node.op not in INLINE_OPS:
            totals[node.source] = totals.get(node.source, Fraction(0)) + node.provenance.share
    return totals


def _stage_problems(graph: Graph) -> list[str]:
    chains: dict[tuple[str, str], list[Node]] = {}
    for node in graph:
        stage = node.provenance.stage
        if stage is not None:
            chains.setdefault((node.source, stage.chain), []).append(node)
    problems: list[str] = []
    for (source, chain), members in chains.items():
        problems.extend(_one_chain_problems(f"{source!r}/{chain!r}", members))
    return problems


def _one_chain_problems(label: str, members: Iterable[Node]) -> list[str]:
    stages = [(n.name, n.provenance.stage) for n in members]
    counts = sorted({stage.num_stages for _, stage in stages if stage is not None})
    indices = sorted(stage.index for _, stage in stages if stage is not None)
    names = ", ".join(name for name, _ in stages)
    if len(counts) != 1:
        return [f"stages of chain {label} ({names}) disagree on num_stages: {counts}"]
    if len(set(indices)) != len(indices) or not all(0 <= i < counts[0] for i in indices):
        return [f"stages of chain {label} ({names}) have indices {indices} of {counts[0]}"]
    return []
