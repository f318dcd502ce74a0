"""Structural checks of a p-graph or e-graph: the rules every pass must preserve.

This module owns :func:`lint` (is this graph well formed?) and
:func:`check_same_dependencies` (did a rewrite keep what each output depends on?).
Both collect every problem before raising, so one run shows all that is wrong; each
problem names the node, port or edge at fault. Lint never changes the graph.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from primflow.graph import ops
from primflow.graph.ir import (
    INLINE_OPS,
    LLM_OPS,
    Edge,
    EdgeKind,
    Graph,
    GraphError,
    Node,
    Op,
    Port,
    is_assignable,
)

PROMPT_OPS = frozenset({Op.LLM_PREFILL, Op.LLM_PARTIAL_PREFILL, Op.LLM_FULL_PREFILL})
# LLM phases that continue a request begun by an earlier phase, through their ``state`` input.
STATE_FED_OPS = frozenset({Op.LLM_FULL_PREFILL, Op.LLM_DECODE, Op.LLM_PARTIAL_DECODE})


class LintError(GraphError):
    """A graph breaks one or more rules; ``problems`` lists each, naming what is at fault."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        listed = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"graph has {len(problems)} problem(s):\n{listed}")


def lint(graph: Graph) -> None:
    """Raise :class:`LintError` listing every rule the graph breaks."""
    problems = find_problems(graph)
    if problems:
        raise LintError(problems)


def find_problems(graph: Graph) -> list[str]:
    """Every rule violation in ``graph``, in a deterministic order (empty when clean)."""
    problems = _check_acyclic(graph) + _check_edges(graph)
    in_edges: dict[str, list[Edge]] = {node.name: [] for node in graph}
    for edge in graph.edges:
        in_edges[edge.dst].append(edge)
    for node in graph:
        for check in _NODE_CHECKS:
            problems.extend(check(graph, node, in_edges[node.name]))
    return problems


def _check_acyclic(graph: Graph) -> list[str]:
    try:
        graph.topo_order()
    except GraphError as exc:
        return [str(exc)]
    return []


def _check_edges(graph: Graph) -> list[str]:
    problems: list[str] = []
    for edge in graph.edges:
        if edge.kind is EdgeKind.ORDER:
            if edge.select is not None:
                problems.append(f"ORDER edge {edge} carries a select slice")
            continue
        src = _port_or_none(graph.node(edge.src).outputs, edge.src_port)
        dst = _port_or_none(graph.node(edge.dst).inputs, edge.dst_port)
        if src is None:
            problems.append(f"edge {edge}: node {edge.src!r} has no output port {edge.src_port!r}")
        if dst is None:
            problems.append(f"edge {edge}: node {edge.dst!r} has no input port {edge.dst_port!r}")
        if src is None or dst is None:
            continue
        if not is_assignable(src.type, dst.type):
            problems.append(f"edge {edge}: {src.type} output cannot feed {dst.type} input")
        if edge.select is not None:
            problems.extend(_check_select(edge, src))
    return problems


def _check_select(edge: Edge, src: Port) -> list[str]:
    assert edge.select is not None
    start, stop = edge.select
    if not src.type.is_list:
        return [f"edge {edge}: select slices a non-list {src.type} port"]
    if not 0 <= start < stop:
        return [f"edge {edge}: select [{start}:{stop}] is empty or negative"]
    if src.num_items is not None and stop > src.num_items:
        return [f"edge {edge}: select [{start}:{stop}] exceeds {src.num_items} items"]
    return []


def _check_inputs_fed(graph: Graph, node: Node, in_edges: list[Edge]) -> list[str]:
    problems: list[str] = []
    data_in = [e for e in in_edges if e.kind is EdgeKind.DATA]
    for port in node.inputs:
        num_edges = sum(1 for e in data_in if e.dst_port == port.name)
        if num_edges > 1:
            problems.append(f"input {node.name}.{port.name} has {num_edges} incoming edges")
        elif num_edges == 0 and not port.is_optional:
            problems.append(f"input {node.name}.{port.name} has no incoming edge")
    return problems


def _check_engine(graph: Graph, node: Node, in_edges: list[Edge]) -> list[str]:
    if node.op in INLINE_OPS or node.engine:
        return []
    return [f"node {node.name!r} ({node.op}) has no engine"]


def _check_fixed_outputs(graph: Graph, node: Node, in_edges: list[Edge]) -> list[str]:
    problems: list[str] = []
    for name, port_type in ops.FIXED_OUTPUTS.get(node.op, {}).items():
        port = _port_or_none(node.outputs, name)
        if port is None:
            problems.append(f"node {node.name!r} ({node.op}) lacks output port {name!r}")
        elif port.type != port_type:
            problems.append(f"output {node.name}.{name} is {port.type}, expected {port_type}")
    return problems


def _check_prompt(graph: Graph, node: Node, in_edges: list[Edge]) -> list[str]:
    if node.op not in PROMPT_OPS:
        return []
    template = node.params.get("template")
    if not isinstance(template, str):
        return [f"node {node.name!r} ({node.op}) has no prompt template (params['template'])"]
    try:
        names = ops.placeholders(template)
    except ValueError as exc:
        return [f"node {node.name!r}: prompt template is malformed: {exc}"]
    fed = {e.dst_port for e in in_edges if e.kind is EdgeKind.DATA}
    problems = [
        f"node {node.name!r}: placeholder {{{name}}} has no "
        + ("incoming edge" if _port_or_none(node.inputs, name) else "input port")
        for name in names
        if name not in fed
    ]
    for port in node.inputs:
        is_state = node.op is Op.LLM_FULL_PREFILL and port.name == ops.STATE
        if port.name not in names and not is_state:
            problems.append(f"input {node.name}.{port.name} is not used by the prompt template")
    return problems


def _check_llm_request(graph: Graph, node: Node, in_edges: list[Edge]) -> list[str]:
    if node.op not in LLM_OPS:
        return []
    request = node.params.get("request")
    if not request:
        return [f"node {node.name!r} ({node.op}) has no params['request']"]
    if node.op not in STATE_FED_OPS:
        return []
    sources = [e.src for e in in_edges if e.kind is EdgeKind.DATA and e.dst_port == ops.STATE]
    problems: list[str] = []
    for src in sources:
        src_request = graph.node(src).params.get("request")
        if src_request != request:
            problems.append(
                f"node {node.name!r} (request {request!r}) reads state of {src!r} "
                f"(request {src_request!r})"
            )
    return problems


def _check_aggregate(graph: Graph, node: Node, in_edges: list[Edge]) -> list[str]:
    if node.op is not Op.AGGREGATE:
        return []
    names = [p.name for p in node.inputs]
    expected = [ops.part(i) for i in range(len(names))]
    problems: list[str] = []
    if not names:
        problems.append(f"aggregate {node.name!r} has no parts")
    elif names != expected:
        problems.append(
            f"aggregate {node.name!r} parts are {', '.join(names)}; expected {', '.join(expected)}"
        )
    mode = node.params.get("mode")
    if mode not in set(ops.AggregateMode):
        problems.append(f"aggregate {node.name!r} has unknown mode {mode!r}")
    if _port_or_none(node.outputs, ops.RESULT) is None:
        problems.append(f"aggregate {node.name!r} lacks output port {ops.RESULT!r}")
    return problems


def _check_function(graph: Graph, node: Node, in_edges: list[Edge]) -> list[str]:
    if node.op not in (Op.FUNCTION, Op.INLINE_FUNCTION):
        return []
    ref = node.params.get("function")
    if not isinstance(ref, ops.FunctionRef):
        return [f"node {node.name!r} ({node.op}) has no FunctionRef in params['function']"]
    problems = [
        f"input {node.name}.{port.name} is no parameter of function {ref}"
        for port in node.inputs
        if port.name not in ref.inputs
    ]
    outputs = [p.name for p in node.outputs]
    if outputs != list(ref.outputs):
        problems.append(
            f"node {node.name!r} outputs {', '.join(outputs) or 'nothing'}; function {ref} "
            f"returns {', '.join(ref.outputs)}"
        )
    if node.is_batchable and ref.items_port not in {p.name for p in node.inputs}:
        problems.append(f"batchable node {node.name!r} lacks its items input {ref.items_port!r}")
    return problems


_NODE_CHECKS: tuple[Callable[[Graph, Node, list[Edge]], list[str]], ...] = (
    _check_inputs_fed,
    _check_engine,
    _check_fixed_outputs,
    _check_prompt,
    _check_llm_request,
    _check_aggregate,
    _check_function,
)


def _port_or_none(ports: Iterable[Port], name: str) -> Port | None:
    return next((p for p in ports if p.name == name), None)


# -- dependency preservation ---------------------------------------------------------


def input_dependencies(graph: Graph) -> dict[str, frozenset[str]]:
    """For each OUTPUT node, the INPUT nodes it reaches backwards along DATA edges."""
    parents: dict[str, set[str]] = {n.name: set() for n in graph}
    for edge in graph.edges:
        if edge.kind is EdgeKind.DATA:
            parents[edge.dst].add(edge.src)
    inputs = {n.name for n in graph.nodes_with_op(Op.INPUT)}
    result: dict[str, frozenset[str]] = {}
    for out in graph.nodes_with_op(Op.OUTPUT):
        seen: set[str] = set()
        stack = [out.name]
        while stack:
            for parent in parents[stack.pop()] - seen:
                seen.add(parent)
                stack.append(parent)
        result[out.name] = frozenset(seen & inputs)
    return result


def check_same_dependencies(before: Graph, after: Graph) -> None:
    """Raise :class:`LintError` unless every OUTPUT of ``before`` is still in ``after``
    and depends on the same INPUT nodes there."""
    old = input_dependencies(before)
    new = input_dependencies(after)
    problems: list[str] = []
    for name, deps in old.items():
        if name not in new:
            problems.append(f"output {name!r} disappeared")
        elif new[name] != deps:
            problems.append(
                f"output {name!r} depended on {sorted(deps)}, now on {sorted(new[name])}"
            )
    problems.extend(f"output {name!r} appeared" for name in new.keys() - old.keys())
    if problems:
        raise LintError(problems)
