"""The contract of each primitive: its ports and params, shared by lowering, passes,
lint, the runtime and the engines.

Port names are fixed per op (below), except LLM prompt ops, whose inputs are the
placeholders of their prompt template, and AGGREGATE, whose inputs are ``part_<i>``.

Each op as ``inputs -> outputs; params``:

- input: ``-> value``; key (the query input it holds)
- output: ``value ->``; key (the result field it fills)
- embed: ``items (texts or chunks) -> vectors``
- vector_ingest: ``chunks, vectors -> index``; collection
- vector_search: ``vectors, index -> hits``; top_k
- rerank: ``query (text), hits -> hits``; top_k
- web_search: ``queries (texts) -> hits``; top_k
- llm_prefill: ``one port per template placeholder -> state``; request, template, system
- llm_partial_prefill: ``placeholders of the prefix -> state``; request, template, system
- llm_full_prefill: ``state + placeholders of the suffix -> state``; request, template
- llm_decode: ``state -> text [, items]``; request, max_tokens, parser, num_items,
  json_schema, stop
- llm_partial_decode: ``state -> items, state``; request, index, num_items, parser
- condition: ``decision (text), value -> if_true, if_false``; predicate
- aggregate: ``part_0 .. part_{k-1} -> result``; mode (concat, top_k, all, first), top_k
- function / inline_function: ``one port per port parameter of the function -> one port
  per declared output (default: result)``; function (a :class:`FunctionRef`), settings
  (the values of its keyword-only parameters). ``function`` runs on a function engine,
  ``inline_function`` (declared cheap) in the graph scheduler. A batchable function
  maps items: its ``FunctionRef.items_port`` list is what stages slice, and its single
  list output has one entry per item.

``request`` ties the phases of one LLM call together within a graph; the runtime
prefixes it with the query id so concurrent queries never share an engine request.
A decode with a ``parser`` is splittable: besides ``text`` it outputs ``items`` (a list of
``num_items`` strings). Decode pipelining replaces it with ``num_items`` partial decodes,
each outputting ``items`` as a one-element list, so downstream list ports keep their type.
A partial decode's ``state`` output is the hand-off to item ``index + 1``: the items
of one call arrive in order, so each waits on its predecessor (the paper's chain).
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from primflow.graph.ir import Op, PortType

ITEMS = "items"
VECTORS = "vectors"
CHUNKS = "chunks"
INDEX = "index"
HITS = "hits"
QUERY = "query"
QUERIES = "queries"
STATE = "state"
TEXT = "text"
VALUE = "value"
DECISION = "decision"
# Not a port: a calibrated choice's decode outputs its per-answer scores under this key
# next to ``text`` (engines/llm/calibration.py); the runtime records them by node.
CHOICE_SCORES = "choice_scores"
IF_TRUE = "if_true"
IF_FALSE = "if_false"
RESULT = "result"


def part(i: int) -> str:
    """Name of an aggregate's i-th input port."""
    return f"part_{i}"


class AggregateMode(StrEnum):
    CONCAT = "concat"  # join list values in part order
    TOP_K = "top_k"  # merge hits, keep the best ``top_k`` by score (dedup by chunk)
    ALL = "all"  # a barrier: wait for every part, pass part_0 on
    FIRST = "first"  # the first part that is not None (joins CONDITION branches)
    # Item i of the result is item i of every part joined into one text (a Chunk gives
    # its text; empty texts are left out) by params["separator"] (default: a blank
    # line). Parts are lists of one length. Contextual retrieval embeds context + chunk.
    ZIP_TEXTS = "zip_texts"


class DecodeParser(StrEnum):
    JSON_LIST = "json_list"  # items of a top-level JSON array of strings
    JSON_OBJECT = "json_object"  # values of a flat JSON object, in key order
    LINES = "lines"  # non-empty lines, numbering and bullets stripped


# Fixed port types per op (LLM prompt placeholders and aggregate parts vary).
FIXED_OUTPUTS: dict[Op, dict[str, PortType]] = {
    Op.EMBED: {VECTORS: PortType.VECTORS},
    Op.VECTOR_INGEST: {INDEX: PortType.INDEX},
    Op.VECTOR_SEARCH: {HITS: PortType.HITS},
    Op.RERANK: {HITS: PortType.HITS},
    Op.WEB_SEARCH: {HITS: PortType.HITS},
    Op.LLM_PREFILL: {STATE: PortType.LLM_STATE},
    Op.LLM_PARTIAL_PREFILL: {STATE: PortType.LLM_STATE},
    Op.LLM_FULL_PREFILL: {STATE: PortType.LLM_STATE},
    Op.LLM_DECODE: {TEXT: PortType.TEXT},
    Op.LLM_PARTIAL_DECODE: {ITEMS: PortType.TEXTS, STATE: PortType.LLM_STATE},
}


@dataclass(frozen=True, eq=False, slots=True)
class FunctionRef:
    """The user function a FUNCTION node calls, with what the graph needs to know of it.

    ``name`` (``module:qualname``) is how printers, lint messages and graph shape keys
    show it, so printed graphs stay deterministic; equality is identity, so two graphs
    are equal only when their nodes call the very same function. ``inputs`` are the
    port parameters in signature order, ``outputs`` the output ports; ``items_port``
    names the list parameter of a batchable function (None otherwise).
    """

    fn: Callable[..., Any]
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    is_async: bool = False
    items_port: str | None = None

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"FunctionRef({self.name!r})"


def placeholders(template: str) -> list[str]:
    """The ``{name}`` fields of a prompt template, in order of first appearance."""
    names = [f for _, f, _, _ in string.Formatter().parse(template) if f]
    return list(dict.fromkeys(names))
