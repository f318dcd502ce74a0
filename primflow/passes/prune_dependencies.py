"""Dependency pruning: keep only the edges that carry data.

Lowering keeps the template's order with ORDER edges (the paper's conservative
GraphTransform); this pass removes every one of them, so branches that share no data
(document indexing and query expansion, say) run in parallel.

Why dropping *every* ORDER edge is safe, including those leaving a CONDITION:
in this IR a CONDITION gates only through its ``if_true``/``if_false`` DATA ports. A
skipped branch reaches its consumers as ``None`` on an optional input; an ORDER edge
never skips or gates anything, it only delays. So removing one can make a node start
earlier but never changes which nodes run or what they read. Data edges are never
touched: each one feeds a port and therefore carries a value. (Duplicate edges cannot
exist: ``Graph.add_edge`` keeps one copy.)
"""

from __future__ import annotations

from primflow.graph.ir import EdgeKind, Graph

PASS_NAME = "prune_dependencies"  # it makes and rewrites no nodes: provenance is untouched


def prune_dependencies(graph: Graph) -> Graph:
    """``graph`` without ORDER edges: a new graph, or ``graph`` itself if it has none."""
    if all(e.kind is EdgeKind.DATA for e in graph.edges):
        return graph
    pruned = graph.copy()
    for edge in pruned.edges:
        if edge.kind is EdgeKind.ORDER:
            pruned.remove_edge(edge)
    return pruned
