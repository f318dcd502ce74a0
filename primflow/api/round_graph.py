"""The pieces of a loop's round graphs (see :mod:`primflow.api.dynamic`): sub-templates
lowered under a round's prefix, the check's decision, and the canonical names a round
graph is optimized under.

Invariants:

- A sub-template's nodes are named ``<prefix><component>``; a query input it reads
  first becomes one INPUT node that the whole query shares.
- A loop's decision is a ``Judge``'s constrained choice (an LLM decode with
  ``choices``); anything else is refused by name.
- :class:`Canonical` maps names both ways without loss: ``<loop>.r#<i>.`` for the i-th
  round prefix of a round graph and ``@boundary.<i>`` for its i-th stand-in, so rounds
  of the same shape look the same to the optimizer's cache.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from primflow.api.expansion import ExpansionState, LoweringContext, LoweringError, Source
from primflow.api.template import BUILTIN_INPUTS, Template
from primflow.graph.ir import Graph, Node, Op, Stage

BOUNDARY_KEY = "@boundary"
ROUND_MARK = "r#"


class LoopSpec(Protocol):
    """What dynamic lowering reads of a ``Loop`` component."""

    @property
    def name(self) -> str: ...
    @property
    def check(self) -> Template: ...
    @property
    def steps(self) -> Mapping[str, Template]: ...
    @property
    def state_names(self) -> tuple[str, ...]: ...
    @property
    def stop_on(self) -> tuple[str, ...]: ...
    @property
    def max_rounds(self) -> int: ...
    @property
    def min_rounds(self) -> int: ...
    @property
    def writes(self) -> Mapping[str, str | None]: ...


class Prefixed:
    """A component seen under another name, so round r's nodes get their own names."""

    def __init__(self, component: Any, name: str) -> None:
        self._component = component
        self.name = name

    @property
    def engine(self) -> str | None:
        engine: str | None = self._component.engine
        return engine

    @property
    def reads(self) -> Mapping[str, str | None]:
        reads: Mapping[str, str | None] = self._component.reads
        return reads

    @property
    def writes(self) -> Mapping[str, str | None]:
        writes: Mapping[str, str | None] = self._component.writes
        return writes


def lower_sub(
    template: Template,
    main: ExpansionState,
    bound: dict[str, Source],
    prefix: str,
    graph: Graph,
) -> ExpansionState:
    """Expand a sub-template's components into ``graph`` under ``prefix``."""
    for key in BUILTIN_INPUTS:
        if key in main.channels and key not in bound:
            bound[key] = main.channels[key]
    sub = ExpansionState(template, main.query, graph=graph, channels=bound, inputs=main.inputs)
    for component in template.components:
        component.expand(LoweringContext(sub, Prefixed(component, prefix + component.name)))
    for key in BUILTIN_INPUTS:  # a query input read first inside: one INPUT node for all
        if key in sub.channels and key not in main.channels:
            main.channels[key] = sub.channels[key]
    return sub


def decision_of(loop: LoopSpec, sub: ExpansionState) -> Source:
    channel = loop.check.outputs["decision"]
    source = sub.channels[channel]
    node = sub.graph.node(source.node)
    if node.op is not Op.LLM_DECODE or not node.params.get("choices"):
        raise LoweringError(
            f"loop {loop.name!r}: the check's decision must be a Judge's constrained "
            f"choice, not {node.op} {node.name!r}"
        )
    return source


def template_of(main: ExpansionState) -> Template:
    template = main.template
    if not isinstance(template, Template):
        raise LoweringError("a loop must be lowered from a Template")
    return template


def has_output(node: Node, port: str) -> bool:
    return any(p.name == port for p in node.outputs)


def without(graph: Graph, names: set[str]) -> Graph:
    if not names:
        return graph
    trimmed = graph.copy()
    for name in names:
        trimmed.remove_node(name)
    return trimmed


class Canonical:
    """Round names <-> canonical names, so rounds of one shape share a cache entry."""

    def __init__(self, prefixes: Sequence[str], standins: Sequence[str], loop: str) -> None:
        self._forward = [(p, f"{loop}.{ROUND_MARK}{i}.") for i, p in enumerate(prefixes)]
        self._standins = {name: f"{BOUNDARY_KEY}.{i}" for i, name in enumerate(standins)}
        self._back_standins = {v: k for k, v in self._standins.items()}

    def to_canonical(self, name: str) -> str:
        if name in self._standins:
            return self._standins[name]
        return swap_prefix(name, self._forward)

    def from_canonical(self, name: str) -> str:
        if name in self._back_standins:
            return self._back_standins[name]
        return swap_prefix(name, [(new, old) for old, new in self._forward])


def swap_prefix(name: str, prefixes: Sequence[tuple[str, str]]) -> str:
    for old, new in prefixes:
        if name.startswith(old):
            return new + name[len(old) :]
    return name


def rename_graph(graph: Graph, rename: Callable[[str], str]) -> Graph:
    """``graph`` with every node name (and what refers to one) passed through ``rename``."""
    renamed = Graph()
    for node in graph:
        renamed.add_node(renamed_node(node, rename))
    for edge in graph.edges:
        renamed.add_edge(dataclasses.replace(edge, src=rename(edge.src), dst=rename(edge.dst)))
    return renamed


def renamed_node(node: Node, rename: Callable[[str], str]) -> Node:
    provenance = node.provenance
    stage = provenance.stage
    if stage is not None:
        stage = Stage(rename(stage.chain), stage.index, stage.num_stages)
    provenance = dataclasses.replace(
        provenance, source=rename(provenance.source) if provenance.source else "", stage=stage
    )
    params: Mapping[str, Any] = node.params
    if "request" in params:
        params = {**params, "request": rename(str(params["request"]))}
    return node.replace(
        name=rename(node.name), origin=rename(node.origin), provenance=provenance, params=params
    )
