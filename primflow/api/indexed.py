"""A template's variant that reads a prebuilt index instead of indexing documents.

:func:`without_indexing` drops the part of a template that builds its vector index
(the VECTOR_INGEST component and the components that only feed it: chunking and
document embedding) and makes the index channel a template input of type INDEX, so a
query supplies an :class:`~primflow.values.IndexHandle` (a persistent collection) and
its p-graph has no document EMBED and no VECTOR_INGEST. Invariants:

- Only chunk / embed / ingest components are dropped; a template whose index needs
  more (contextual retrieval situates each chunk with the LLM before embedding it) is
  refused, since a collection stores plain chunk embeddings.
- The ``>>`` order between kept components survives through dropped ones
  (``a >> dropped >> b`` becomes ``a >> b``).
- The variant is validated like any template (``build_template``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from primflow.api.component import Component, Flow
from primflow.api.template import BUILTIN_INPUTS, Template, TemplateError, build_template
from primflow.graph.ir import PortType

PREBUILT_KINDS = frozenset({"chunk", "embed", "ingest"})
SUFFIX = "@collection"


@dataclass(frozen=True)
class IndexedTemplate:
    """The variant, the input channel its index handle goes in, and the engines that
    search the index and embed its queries (a collection checks them)."""

    template: Template
    index_channel: str
    search_engines: tuple[str, ...]
    embed_engines: tuple[str, ...]


def without_indexing(template: Template) -> IndexedTemplate:
    ingests = [c for c in template.components if c.kind == "ingest"]
    if len(ingests) != 1:
        raise TemplateError(
            f"template {template.name!r} builds {len(ingests)} vector indexes; reading a "
            "collection needs exactly one"
        )
    index_channel = ingests[0].writes["index"] or "index"
    dropped = _indexing_part(template, ingests[0])
    for comp in template.components:
        if comp.name in dropped and comp.kind not in PREBUILT_KINDS:
            raise TemplateError(
                f"app {template.name!r} builds its index with {comp.kind!r} (component "
                f"{comp.name!r}), which a collection does not store; pass documents instead",
                comp.name,
            )
    kept = [c for c in template.components if c.name not in dropped]
    edges = _bridged_edges(template, kept, dropped)
    inputs = {k: t for k, t in template.inputs.items() if k not in BUILTIN_INPUTS}
    inputs[index_channel] = PortType.INDEX
    flow = Flow(kept, edges, kept, kept)
    variant = build_template(template.name + SUFFIX, flow, outputs=template.outputs, inputs=inputs)
    readers = [c for c in kept if index_channel in c.reads.values()]
    return IndexedTemplate(
        variant,
        index_channel,
        _engines(readers),
        _engines(c for c in kept if c.kind == "embed"),
    )


def _indexing_part(template: Template, ingest: Component) -> set[str]:
    """The ingest and every component whose outputs only dropped components read."""
    readers = _readers(template)
    outputs = set(template.outputs.values())
    dropped = {ingest.name}
    is_growing = True
    while is_growing:
        is_growing = False
        for comp in template.components:
            written = [ch for ch in comp.writes.values() if ch is not None]
            if comp.name in dropped or not written or outputs.intersection(written):
                continue
            read_by = {r for ch in written for r in readers.get(ch, ())}
            if read_by and read_by <= dropped:
                dropped.add(comp.name)
                is_growing = True
    return dropped


def _readers(template: Template) -> Mapping[str, set[str]]:
    found: dict[str, set[str]] = {}
    for comp in template.components:
        for channel in comp.reads.values():
            if channel is not None:
                found.setdefault(channel, set()).add(comp.name)
    return found


def _bridged_edges(
    template: Template, kept: list[Component], dropped: set[str]
) -> list[tuple[Component, Component]]:
    children: dict[str, list[str]] = {}
    for a, b in template.edges:
        children.setdefault(a, []).append(b)
    by_name = {c.name: c for c in kept}
    edges: list[tuple[Component, Component]] = []
    for comp in kept:
        frontier, seen = list(children.get(comp.name, [])), set()
        while frontier:
            name = frontier.pop()
            if name in seen:
                continue
            seen.add(name)
            if name in dropped:
                frontier.extend(children.get(name, []))
            else:
                edges.append((comp, by_name[name]))
    return edges


def _engines(components: Iterable[Component]) -> tuple[str, ...]:
    names = {c.engine for c in components if c.engine is not None}
    return tuple(sorted(names))
