"""Node positions for drawing a graph left to right: a layered layout.

A node's layer is the length of the longest path from a source to it (so every edge
points right); within a layer nodes keep the graph's order, centred on zero. Pure
and deterministic, O(V + E).
"""

from __future__ import annotations

from collections.abc import Sequence


def layered_positions(
    names: Sequence[str], edges: Sequence[tuple[str, str]]
) -> dict[str, tuple[float, float]]:
    known = set(names)
    parents: dict[str, list[str]] = {n: [] for n in names}
    children: dict[str, list[str]] = {n: [] for n in names}
    for src, dst in edges:
        if src in known and dst in known:
            parents[dst].append(src)
            children[src].append(dst)
    num_waiting = {n: len(parents[n]) for n in names}
    order = [n for n in names if num_waiting[n] == 0]
    layer = dict.fromkeys(names, 0)
    for name in order:  # grows while iterated: Kahn's algorithm
        for child in children[name]:
            layer[child] = max(layer[child], layer[name] + 1)
            num_waiting[child] -= 1
            if num_waiting[child] == 0:
                order.append(child)
    by_layer: dict[int, list[str]] = {}
    for name in names:
        by_layer.setdefault(layer[name], []).append(name)
    positions: dict[str, tuple[float, float]] = {}
    for index, members in by_layer.items():
        offset = (len(members) - 1) / 2
        for row, name in enumerate(members):
            positions[name] = (float(index), offset - row)
    return positions
