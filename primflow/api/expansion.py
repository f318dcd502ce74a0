"""The context a component expands in during lowering, and the channel values it reads.

Owns :class:`LoweringContext` (bindings, the query, the graph being built), :class:`Source`
(where a channel's value comes from) and :class:`LoweringError`. It knows components and
templates only through the small protocols below, so the component classes can import it
and :mod:`primflow.api.lower` can drive it without an import circle.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from primflow.graph import ops
from primflow.graph.ir import Graph, Node, Op, Port, PortType, Provenance
from primflow.values import IndexHandle

if TYPE_CHECKING:
    from primflow.api.config import Query, QueryConfig


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


class ExpandingComponent(Protocol):
    """A component as its expansion sees it: its name, engine group and bindings."""

    @property
    def name(self) -> str: ...
    @property
    def engine(self) -> str | None: ...
    @property
    def reads(self) -> Mapping[str, str | None]: ...
    @property
    def writes(self) -> Mapping[str, str | None]: ...


class ChannelInfo(Protocol):
    @property
    def is_conditional(self) -> bool: ...


class TemplateChannels(Protocol):
    """What an expansion reads of the template: its channels and its input types."""

    @property
    def channels(self) -> Mapping[str, ChannelInfo]: ...
    @property
    def inputs(self) -> Mapping[str, PortType]: ...


@dataclass
class ExpansionState:
    """The graph of one query as its components expand into it, and their channels."""

    template: TemplateChannels
    query: Query
    graph: Graph = field(default_factory=Graph)
    channels: dict[str, Source] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    owned: dict[str, list[str]] = field(default_factory=dict)
    # The query's loop growth (api/dynamic.py), set when a Loop expands; None otherwise.
    growth: Any = None


class LoweringContext:
    """What a component sees while it expands: its bindings, the query, and the graph."""

    def __init__(self, state: ExpansionState, component: ExpandingComponent) -> None:
        self._state = state
        self.component = component
        self._owned = state.owned.setdefault(component.name, [])

    @property
    def query(self) -> Query:
        return self._state.query

    @property
    def state(self) -> ExpansionState:
        """The expansion this context adds to (a loop lowers its rounds from it)."""
        return self._state

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
        lowered = node.replace(origin=self.component.name, provenance=Provenance(node.name))
        node = self._state.graph.add_node(lowered)
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
        # A prebuilt index (a collection) says its size, as an ingest's output does.
        index_size = value.num_items if isinstance(value, IndexHandle) else None
        return Source(
            node.name,
            ops.VALUE,
            port_type,
            num_items if port_type.is_list else None,
            index_size=index_size,
        )


def _input_node(key: str, port_type: PortType, num_items: int) -> Node:
    port = Port(ops.VALUE, port_type, num_items if port_type.is_list else None)
    name = f"input.{key}"
    return Node(name, Op.INPUT, outputs=(port,), params={"key": key}, provenance=Provenance(name))


def _input_value(query: Query, key: str) -> Any:
    if key == "question":
        return query.question
    if key == "question_list":
        return [query.question]
    if key not in query.inputs:
        raise LoweringError(f"the query has no value for template input {key!r}")
    return query.inputs[key]


def add_output(state: ExpansionState, key: str, source: Source) -> None:
    """The OUTPUT node of template output ``key`` (params ``key``), reading ``source``."""
    port = source.port_for(ops.VALUE, is_optional=source.is_conditional)
    name = f"output.{key}"
    node = Node(
        name,
        Op.OUTPUT,
        inputs=(port,),
        params={"key": key},
        origin="output",
        provenance=Provenance(name),
    )
    state.graph.add_node(node)
    state.graph.connect(source.node, source.port, node.name, ops.VALUE)
