"""A validated workflow template: components, their order, and typed channels.

:func:`build_template` checks, before any query arrives, that the components form a
DAG, that every channel a component reads is a template input or is written by a
component upstream of it, that the channel's type is one the role accepts, that no
channel is written twice, and that each output names a channel. Errors name the
component and channel (:class:`TemplateError`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from primflow.api.component import Component, Composable, Flow
from primflow.graph.ir import PortType

# Channels every query provides: its question, and the question as a one-item list
# (for primitives that take a list of queries).
BUILTIN_INPUTS: dict[str, PortType] = {
    "question": PortType.TEXT,
    "question_list": PortType.TEXTS,
}


class TemplateError(ValueError):
    """A template is malformed. ``component`` names the component at fault, if any."""

    def __init__(self, message: str, component: str | None = None) -> None:
        self.component = component
        prefix = f"component {component!r}: " if component else ""
        super().__init__(prefix + message)


@dataclass(frozen=True, slots=True)
class Channel:
    """A named value a template carries: who writes it, its type, and whether it may be
    absent at run time (downstream of an untaken CONDITION branch)."""

    name: str
    type: PortType
    writer: str | None  # None for a query input
    is_conditional: bool = False


@dataclass(frozen=True)
class Template:
    """Components in topological order, the ``>>`` edges between them (by name), and
    the typed channels. Build one with :func:`build_template`.

    Examples:
        >>> from primflow import Embed, build_template
        >>> embed = Embed(items="question_list", vectors="vectors")
        >>> template = build_template("embed_question", embed, outputs={"vectors": "vectors"})
        >>> [c.name for c in template.components], dict(template.outputs)
        (['embed'], {'vectors': 'vectors'})
        >>> template.channels["vectors"].type, template.component("embed").engine
        (<PortType.VECTORS: 'vectors'>, 'embedder')
    """

    name: str
    components: tuple[Component, ...]
    edges: tuple[tuple[str, str], ...]
    inputs: Mapping[str, PortType]
    outputs: Mapping[str, str]  # result key -> channel
    channels: Mapping[str, Channel]

    def component(self, name: str) -> Component:
        for comp in self.components:
            if comp.name == name:
                return comp
        raise KeyError(f"template {self.name!r} has no component {name!r}")


def build_template(
    name: str,
    *flows: Composable,
    outputs: Mapping[str, str],
    inputs: Mapping[str, PortType] | None = None,
) -> Template:
    """Join ``flows`` (components shared between flows are one node) and validate.

    Each component reads channels that are template inputs (``question``,
    ``question_list``, and any in ``inputs``) or written upstream of it; ``outputs`` maps
    result keys to channels. Errors (:class:`~primflow.api.TemplateError`) name the
    component and the channel at fault.

    Examples:
        >>> from primflow import Embed, VectorSearch, build_template
        >>> embed = Embed(items="question_list", vectors="vectors")
        >>> flow = embed >> VectorSearch(vectors="vectors")
        >>> build_template("no_index", flow, outputs={"hits": "hits"})
        Traceback (most recent call last):
        ...
        primflow.api.template.TemplateError: component 'search': reads channel 'index' ...
    """
    if not flows:
        raise TemplateError(f"template {name!r} has no components")
    flow = Flow.of(list(flows))
    components = _check_names(flow.components)
    edges = [(a.name, b.name) for a, b in flow.edges]
    order = _topo_order([c.name for c in components], edges)
    by_name = {c.name: c for c in components}
    ordered = tuple(by_name[n] for n in order)
    all_inputs = {**BUILTIN_INPUTS, **(inputs or {})}
    channels = _check_channels(ordered, edges, all_inputs)
    _check_outputs(name, outputs, channels)
    return Template(name, ordered, tuple(edges), all_inputs, dict(outputs), channels)


def _check_names(components: list[Component]) -> list[Component]:
    seen: set[str] = set()
    for comp in components:
        if comp.name in seen:
            raise TemplateError(
                "two different components share this name; pass name=... to tell them apart",
                comp.name,
            )
        seen.add(comp.name)
    return components


def _topo_order(names: list[str], edges: list[tuple[str, str]]) -> list[str]:
    children: dict[str, list[str]] = {n: [] for n in names}
    indegree = dict.fromkeys(names, 0)
    for a, b in edges:
        children[a].append(b)
        indegree[b] += 1
    ready = [n for n in names if indegree[n] == 0]
    order: list[str] = []
    while ready:
        current = ready.pop(0)
        order.append(current)
        for child in children[current]:
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    if len(order) < len(names):
        stuck = [n for n in names if indegree[n] > 0]
        raise TemplateError(f"the components form a cycle through {', '.join(stuck)}")
    return order


def _ancestors(order: Iterable[str], edges: list[tuple[str, str]]) -> dict[str, set[str]]:
    parents: dict[str, list[str]] = {}
    for a, b in edges:
        parents.setdefault(b, []).append(a)
    result: dict[str, set[str]] = {}
    for name in order:  # topological, so parents are done first
        found: set[str] = set()
        for parent in parents.get(name, []):
            found |= {parent} | result[parent]
        result[name] = found
    return result


def _check_channels(
    components: tuple[Component, ...],
    edges: list[tuple[str, str]],
    inputs: Mapping[str, PortType],
) -> dict[str, Channel]:
    channels = {n: Channel(n, t, None) for n, t in inputs.items()}
    ancestors = _ancestors([c.name for c in components], edges)
    writers = {ch: c.name for c in components for ch in c.writes.values() if ch is not None}
    for comp in components:
        try:
            comp.validate()
        except ValueError as exc:
            raise TemplateError(str(exc), comp.name) from None
        input_types, is_conditional = _check_reads(comp, channels, writers, ancestors[comp.name])
        try:
            output_types = comp.output_types(input_types)
        except ValueError as exc:
            raise TemplateError(str(exc), comp.name) from None
        for role, channel in comp.writes.items():
            if channel is None:
                continue
            if channel in channels:
                writer = channels[channel].writer
                by = f"component {writer!r}" if writer else "the query (a template input)"
                raise TemplateError(
                    f"writes channel {channel!r}, already written by {by}", comp.name
                )
            conditional = is_conditional or role in comp.conditional_outputs()
            channels[channel] = Channel(channel, output_types[role], comp.name, conditional)
    return channels


def _check_reads(
    comp: Component,
    channels: Mapping[str, Channel],
    writers: Mapping[str, str],
    upstream: set[str],
) -> tuple[dict[str, PortType], bool]:
    """Types of the channels ``comp`` reads, and whether a required one is conditional."""
    types: dict[str, PortType] = {}
    is_conditional = False
    for role, spec in comp.input_roles().items():
        channel_name = comp.reads[role]
        if channel_name is None:
            if not spec.is_optional:
                raise TemplateError(f"input {role!r} must be bound to a channel", comp.name)
            continue
        channel = channels.get(channel_name)
        writer = writers.get(channel_name)
        if (
            writer is not None
            and writer not in upstream
            and channel_name not in inputs_of(channels)
        ):
            raise TemplateError(
                f"reads channel {channel_name!r} written by {writer!r}, which is not "
                f"upstream of it; order them with {writer} >> {comp.name}",
                comp.name,
            )
        if channel is None:
            known = ", ".join(sorted(channels)) or "none"
            raise TemplateError(
                f"reads channel {channel_name!r} (as {role!r}) but no upstream component "
                f"writes it and it is not a template input (available: {known})",
                comp.name,
            )
        if channel.type not in spec.types and PortType.ANY not in spec.types:
            raise TemplateError(
                f"reads channel {channel_name!r} as {role!r}: expected {spec.describe()}, "
                f"but the channel holds {channel.type}",
                comp.name,
            )
        types[role] = channel.type
        is_conditional |= channel.is_conditional and not spec.is_optional
    return types, is_conditional


def inputs_of(channels: Mapping[str, Channel]) -> set[str]:
    return {name for name, ch in channels.items() if ch.writer is None}


def _check_outputs(name: str, outputs: Mapping[str, str], channels: Mapping[str, Channel]) -> None:
    if not outputs:
        raise TemplateError(f"template {name!r} declares no outputs")
    for key, channel in outputs.items():
        if channel not in channels:
            known = ", ".join(sorted(channels))
            raise TemplateError(
                f"template {name!r} output {key!r} names unknown channel {channel!r} "
                f"(channels: {known})"
            )
