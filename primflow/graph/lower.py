"""Per-query lowering (the paper's GraphTransform, Algorithm 1): template + query -> p-graph.

Each component expands into primitives according to the query's data and config
(:meth:`primflow.api.component.Component.expand`); this module owns the context they
expand in and the steps around it:

1. one INPUT node per query input a component reads (params ``key``), created on first
   read; documents are chunked here, so their chunks arrive as an INPUT value;
2. each component's primitives, with DATA edges for the channels it reads;
3. for each template edge ``a >> b``, an ORDER edge from every tail primitive of ``a`` to
   every head primitive of ``b`` (conservative on purpose; dependency pruning drops the
   ones no data needs), skipped where a DATA edge already joins the pair;
4. one OUTPUT node per template output (params ``key``).

Node names are ``<component>`` or ``<component>.<part>``; LLM calls use their base name
as the ``request`` param, so it is unique within the graph.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from primflow.graph import ops
from primflow.graph.ir import Edge, EdgeKind, Graph, Node, Op, Port, PortType

if TYPE_CHECKING:
    from primflow.api.component import Component
    from primflow.api.config import Query, QueryConfig
    from primflow.api.template import Template


class LoweringError(ValueError):
    """A query cannot be lowered with a template; names the component and the cause."""


@dataclass(frozen=True, slots=True)
class Source:
    """Where a channel's value comes from in the graph: an output port, its type and
    size, the item count of an index it names, and whether it may be absent."""

    node: str
    port: str
    type: PortType
    num_items: int | None = None
    index_size: int | None = None
    is_conditional: bool = False

    def port_for(
        self, name: str, select: tuple[int, int] | None = None, is_optional: bool = False
    ) -> Port:
        """An input port that receives this value (or its ``select`` slice)."""
        num_items = self.num_items if select is None else select[1] - select[0]
        return Port(name, self.type, num_items if self.type.is_list else None, is_optional)


@dataclass
class LoweredQuery:
    """The p-graph of one query and the values of its INPUT nodes (by ``key``)."""

    graph: Graph
    inputs: dict[str, Any]


@dataclass
class _State:
    template: Template
    query: Query
    graph: Graph = field(default_factory=Graph)
    channels: dict[str, Source] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    owned: dict[str, list[str]] = field(default_factory=dict)


class LoweringContext:
    """What a component sees while it expands: its bindings, the query, and the graph."""

    def __init__(self, state: _State, component: Component) -> None:
        self._state = state
        self.component = component
        self._owned = state.owned.setdefault(component.name, [])

    @property
    def query(self) -> Query:
        return self._state.query

    @property
    def config(self) -> QueryConfig:
        return self._state.query.config

    @property
    def engine(self) -> str | None:
        return self.component.engine

    def name(self, *parts: str | int) -> str:
        return ".".join([self.component.name, *(str(p) for p in parts)])

    def error(self, message: str) -> LoweringError:
        return LoweringError(f"component {self.component.name!r}: {message}")

    # -- channels -----------------------------------------------------------------------
    def read(self, role: str) -> Source:
        source = self.read_optional(role)
        if source is None:
            raise self.error(f"input {role!r} is not bound")
        return source

    def read_optional(self, role: str) -> Source | None:
        channel = self.component.reads.get(role)
        if channel is None:
            return None
        if channel not in self._state.channels:
            self._state.channels[channel] = self._query_input(channel)
        return self._state.channels[channel]

    def write(self, role: str, source: Source) -> None:
        channel = self.component.writes.get(role)
        if channel is None:
            return
        if self._state.template.channels[channel].is_conditional:
            source = dataclasses.replace(source, is_conditional=True)
        self._state.channels[channel] = source

    # -- graph --------------------------------------------------------------------------
    def add(self, node: Node) -> Node:
        node = self._state.graph.add_node(node.replace(origin=self.component.name))
        self._owned.append(node.name)
        return node

    def connect(
        self, source: Source, dst: str, dst_port: str, select: tuple[int, int] | None = None
    ) -> None:
        self._state.graph.connect(source.node, source.port, dst, dst_port, select)

    def add_input(self, key: str, port_type: PortType, value: Any, num_items: int) -> Source:
        """An INPUT node owned by this component (e.g. the chunks it cut)."""
        node = self.add(_input_node(key, port_type, num_items))
        self._state.inputs[key] = value
        return Source(node.name, ops.VALUE, port_type, num_items)

    def _query_input(self, key: str) -> Source:
        """The INPUT node of a template input, made on first read (owned by no component)."""
        template = self._state.template
        if key not in template.inputs:
            raise self.error(f"channel {key!r} has no value yet; is the template built?")
        value = _input_value(self._state.query, key)
        port_type = template.inputs[key]
        num_items = len(value) if port_type.is_list else 1
        node = _input_node(key, port_type, num_items)
        self._state.graph.add_node(node)
        self._state.inputs[key] = value
        return Source(node.name, ops.VALUE, port_type, num_items if port_type.is_list else None)


def _input_node(key: str, port_type: PortType, num_items: int) -> Node:
    port = Port(ops.VALUE, port_type, num_items if port_type.is_list else None)
    return Node(f"input.{key}", Op.INPUT, outputs=(port,), params={"key": key})


def _input_value(query: Query, key: str) -> Any:
    if key == "question":
        return query.question
    if key == "question_list":
        return [query.question]
    if key not in query.inputs:
        raise LoweringError(f"the query has no value for template input {key!r}")
    return query.inputs[key]


def lower_query(template: Template, query: Query) -> LoweredQuery:
    """Expand ``template`` for ``query``: the p-graph and its input values."""
    state = _State(template, query)
    for component in template.components:
        component.expand(LoweringContext(state, component))
    for upstream, downstream in template.edges:
        _order(state, upstream, downstream)
    for key, channel in template.outputs.items():
        _add_output(state, key, state.channels[channel])
    return LoweredQuery(state.graph, state.inputs)


def lower(template: Template, query: Query) -> Graph:
    """The p-graph of ``query`` under ``template`` (see :func:`lower_query`)."""
    return lower_query(template, query).graph


def _order(state: _State, upstream: str, downstream: str) -> None:
    graph = state.graph
    tails = _ends(graph, state.owned.get(upstream, []), is_head=False)
    heads = _ends(graph, state.owned.get(downstream, []), is_head=True)
    for tail in tails:
        joined = set(graph.children(tail))
        for head in heads:
            if head not in joined:
                graph.add_edge(Edge(tail, head, kind=EdgeKind.ORDER))


def _ends(graph: Graph, owned: list[str], is_head: bool) -> list[str]:
    """Owned nodes with no parent (heads) or no child (tails) among the owned nodes."""
    members = set(owned)
    ends: list[str] = []
    for name in owned:
        links = graph.parents(name) if is_head else graph.children(name)
        if not members.intersection(links):
            ends.append(name)
    return ends


def _add_output(state: _State, key: str, source: Source) -> None:
    port = source.port_for(ops.VALUE, is_optional=source.is_conditional)
    node = Node(f"output.{key}", Op.OUTPUT, inputs=(port,), params={"key": key}, origin="output")
    state.graph.add_node(node)
    state.graph.connect(source.node, source.port, node.name, ops.VALUE)
