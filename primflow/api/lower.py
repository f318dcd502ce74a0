"""Per-query lowering (the paper's GraphTransform, Algorithm 1): template + query -> p-graph.

Each component expands into primitives according to the query's data and config
(:meth:`primflow.api.component.Component.expand`) in a
:class:`~primflow.api.expansion.LoweringContext`; this module owns the steps around it:

1. one INPUT node per query input a component reads (params ``key``), created on first
   read; documents are chunked here, so their chunks arrive as an INPUT value;
2. each component's primitives, with DATA edges for the channels it reads;
3. for each template edge ``a >> b``, an ORDER edge from every tail primitive of ``a`` to
   every head primitive of ``b`` (conservative on purpose; dependency pruning drops the
   ones no data needs), skipped where a DATA edge already joins the pair;
4. one OUTPUT node per template output (params ``key``).

A template with a ``Loop`` lowers up to the loop's first decision: the components that
read what the loop writes, and the outputs that do, are lowered when the loop ends
(``LoweredQuery.growth``, see :mod:`primflow.api.dynamic`).

Node names are ``<component>`` or ``<component>.<part>``; LLM calls use their base name
as the ``request`` param, so it is unique within the graph. Every node's provenance
names itself as its source (a p-graph node derives from nothing else); passes keep that
source on every node they make from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from primflow.api.dynamic import LoopGrowth, finish_lowering
from primflow.api.expansion import (
    ExpansionState,
    LoweringContext,
    LoweringError,
    Source,
    add_output,
)
from primflow.graph.ir import Edge, EdgeKind, Graph

if TYPE_CHECKING:
    from primflow.api.config import Query
    from primflow.api.template import Template

__all__ = ["LoweredQuery", "LoweringContext", "LoweringError", "Source", "lower", "lower_query"]


@dataclass
class LoweredQuery:
    """The p-graph of one query and the values of its INPUT nodes (by ``key``);
    ``growth`` lowers the rest of a query with a loop while it runs (None otherwise)."""

    graph: Graph
    inputs: dict[str, Any]
    growth: LoopGrowth | None = None


def lower_query(template: Template, query: Query) -> LoweredQuery:
    """Expand ``template`` for ``query``: the p-graph and its input values.

    Examples:
        >>> from primflow import get_app, lower_query
        >>> app = get_app("naive_rag")
        >>> query = app.query("How much leave?", ["Employees get 25 days of paid leave."])
        >>> lowered = lower_query(app.template(), query)
        >>> sorted(lowered.inputs)
        ['chunks', 'question', 'question_list']
        >>> [c.text for c in lowered.inputs["chunks"]]
        ['Employees get 25 days of paid leave.']
    """
    state = ExpansionState(template, query)
    pending: set[str] = set()  # channels a loop writes once it ends
    deferred = []
    for component in template.components:
        writes = {ch for ch in component.writes.values() if ch is not None}
        if pending.intersection(component.reads.values()):
            deferred.append(component)
            pending |= writes
            continue
        component.expand(LoweringContext(state, component))
        if getattr(component, "is_dynamic", False):
            pending |= writes
    for upstream, downstream in template.edges:
        _order(state, upstream, downstream)
    deferred_outputs = {k: ch for k, ch in template.outputs.items() if ch in pending}
    for key, channel in template.outputs.items():
        if channel not in pending:
            add_output(state, key, state.channels[channel])
    if state.growth is not None:
        finish_lowering(state.growth, state, deferred, deferred_outputs)
    return LoweredQuery(state.graph, state.inputs, state.growth)


def lower(template: Template, query: Query) -> Graph:
    """The p-graph of ``query`` under ``template`` (see :func:`lower_query`).

    Its shape follows the query: the chunk count, top-k and synthesis mode decide which
    primitives there are.

    Examples:
        >>> from primflow import Op, get_app, lower
        >>> app = get_app("naive_rag")
        >>> docs = ["25 days of paid leave."]
        >>> query = app.query("How much leave?", docs, synthesis_mode="one_shot")
        >>> graph = lower(app.template(), query)
        >>> [n.name for n in graph if n.op not in (Op.INPUT, Op.OUTPUT)]
        ['embed_docs', 'ingest', 'embed_question', 'search', 'synthesize.prefill',
         'synthesize.decode']
        >>> graph.parents("embed_question")  # in template order, until the passes prune it
        ['input.question_list', 'ingest']
    """
    return lower_query(template, query).graph


def _order(state: ExpansionState, upstream: str, downstream: str) -> None:
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
