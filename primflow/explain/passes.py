"""What each optimization pass changed, replayed pass by pass from the p-graph.

``pass_steps`` runs the same pass list the optimizer ran, in the same rounds (the
pipeline's fixpoint rule: rounds until one changes nothing), and records one
``PassStep`` per pass application that changed the graph: the nodes it added and
removed and the edges it added and removed. Passes are pure and deterministic, so the
replay ends at the graph the query ran; ``replay_matches`` says whether it did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from primflow.graph.ir import Edge, Graph
from primflow.passes.pipeline import DEFAULT_MAX_ROUNDS, GraphPass


@dataclass(frozen=True, slots=True)
class PassStep:
    pass_name: str
    round: int
    added: list[str]  # node names
    removed: list[str]
    num_edges_added: int
    num_edges_removed: int

    def summary(self) -> str:
        parts = []
        if self.added:
            parts.append(f"+{len(self.added)} nodes ({_names(self.added)})")
        if self.removed:
            parts.append(f"-{len(self.removed)} nodes ({_names(self.removed)})")
        if self.num_edges_added or self.num_edges_removed:
            parts.append(f"edges +{self.num_edges_added} -{self.num_edges_removed}")
        return ", ".join(parts) or "rewrote node parameters"

    def to_dict(self) -> dict[str, object]:
        return {
            "pass": self.pass_name,
            "round": self.round,
            "added": self.added,
            "removed": self.removed,
            "num_edges_added": self.num_edges_added,
            "num_edges_removed": self.num_edges_removed,
        }

    @staticmethod
    def from_dict(data: dict[str, object]) -> PassStep:
        return PassStep(
            str(data["pass"]),
            int(str(data["round"])),
            [str(n) for n in _list(data["added"])],
            [str(n) for n in _list(data["removed"])],
            int(str(data["num_edges_added"])),
            int(str(data["num_edges_removed"])),
        )


def _list(value: object) -> list[object]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {type(value).__name__}")
    return value


def _names(names: list[str], max_num: int = 4) -> str:
    shown = ", ".join(names[:max_num])
    return shown + (f", ... {len(names) - max_num} more" if len(names) > max_num else "")


def _edge_key(edge: Edge) -> tuple[str, str, str, str, str]:
    return (edge.src, edge.src_port, edge.dst, edge.dst_port, str(edge.kind))


def diff(before: Graph, after: Graph, pass_name: str, round_index: int) -> PassStep:
    names_before = {n.name for n in before}
    names_after = {n.name for n in after}
    edges_before = {_edge_key(e) for e in before.edges}
    edges_after = {_edge_key(e) for e in after.edges}
    return PassStep(
        pass_name,
        round_index,
        sorted(names_after - names_before),
        sorted(names_before - names_after),
        len(edges_after - edges_before),
        len(edges_before - edges_after),
    )


def pass_steps(
    pgraph: Graph, passes: Sequence[GraphPass], max_rounds: int = DEFAULT_MAX_ROUNDS
) -> tuple[list[PassStep], Graph]:
    """Every change the passes made to ``pgraph``, in order, and the final graph."""
    steps: list[PassStep] = []
    graph = pgraph
    for round_index in range(1, max_rounds + 1):
        is_changed = False
        for graph_pass in passes:
            new_graph = graph_pass.run(graph)
            if new_graph is not graph and new_graph != graph:
                is_changed = True
                steps.append(diff(graph, new_graph, graph_pass.name, round_index))
            graph = new_graph
        if not is_changed:
            break
    return steps, graph
