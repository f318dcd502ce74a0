"""One LLM call as primitives: a prefill fed by the prompt's placeholders, then a decode.

Shared by every component that calls an LLM. The two phases share the ``request``
param (the call's base node name, unique in the graph); the prefill's input ports are
exactly the prompt's placeholders, each fed by one DATA edge.

``ignore_eos`` is for free-text answers only: a structured decode (a parser or a JSON
schema) ends when its structure closes, and running it past that would only feed the
grammar tokens it cannot accept, so asking for both is a lowering error. Components
that lower structured calls (expansion, judge, situate) never set it. The decode gets
the param only when it is set, so graphs of ordinary queries stay as they were.

Sampling (``temperature``, ``top_p``, ``top_k``, ``seed``; the config's
``sample_top_k`` is the decode's ``top_k``) likewise: the decode gets
those params only when ``temperature > 0`` (greedy decoding ignores the rest), so a
greedy query's graph, and its cache entry, do not depend on them. Free-text answer
calls take them from the query's config (:func:`answer_decode_spec`); structured calls
stay greedy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from primflow.api.expansion import LoweringContext, Source
from primflow.graph import ops
from primflow.graph.ir import Node, Op, Port, PortType


@dataclass(frozen=True, slots=True)
class Binding:
    """The value behind one placeholder: a source, optionally a slice of its items."""

    source: Source
    select: tuple[int, int] | None = None
    is_optional: bool = False


@dataclass(frozen=True, slots=True)
class DecodeSpec:
    max_tokens: int
    parser: ops.DecodeParser | None = None
    num_items: int | None = None
    json_schema: Mapping[str, Any] | None = None
    stop: Sequence[str] | None = None
    ignore_eos: bool = False  # run to max_tokens (or a stop string): see the module doc
    # A constrained choice: the decode writes exactly one of these (a grammar on llama.cpp).
    choices: Sequence[str] | None = None
    # Pick the choice by calibrated log-probabilities instead of a grammar (engines that
    # can score; others keep the grammar): the prefill then also renders every
    # placeholder as ``content_free`` for the prior, and ``choice_bias`` is added.
    calibrate: bool = False
    content_free: str = "N/A"
    content_free_keeps: Sequence[str] = ()  # placeholders the content-free prompt keeps
    choice_bias: Mapping[str, float] | None = None
    grammar: str | None = None  # a GBNF grammar of its own (e.g. arithmetic expressions)
    temperature: float = 0.0  # 0: greedy; see the module doc
    top_p: float = 1.0
    top_k: int = 0  # 0: no limit
    seed: int | None = None  # None: a random seed per call (when sampling)


def answer_decode_spec(
    ctx: LoweringContext, max_tokens: int, stop: Sequence[str] | None = None
) -> DecodeSpec:
    """A free-text answer's decode: ``max_tokens``, the component's ``stop`` strings then
    the query's, and the query's ``ignore_eos`` and sampling settings."""
    config = ctx.config
    stops = list(dict.fromkeys([*(stop or ()), *config.stop]))
    return DecodeSpec(
        max_tokens=max_tokens,
        stop=stops or None,
        ignore_eos=config.ignore_eos,
        temperature=config.temperature,
        top_p=config.top_p,
        top_k=config.sample_top_k,
        seed=config.seed,
    )


def add_llm_call(
    ctx: LoweringContext,
    base: str,
    template: str,
    bindings: Mapping[str, Binding],
    decode: DecodeSpec,
    system: str | None = None,
) -> Node:
    """Add ``base.prefill -> base.decode`` and return the decode node."""
    names = ops.placeholders(template)
    unbound = [n for n in names if n not in bindings]
    if unbound:
        raise ctx.error(f"prompt placeholder {{{unbound[0]}}} of {base!r} has no value")
    is_structured = (
        decode.parser is not None or decode.json_schema is not None or decode.grammar is not None
    )
    if decode.ignore_eos and (is_structured or decode.choices):
        raise ctx.error(
            f"LLM call {base!r}: ignore_eos applies to free-text decodes only, "
            "not to one with a parser, a JSON schema or choices"
        )
    if decode.choices is not None and (is_structured or not decode.choices):
        raise ctx.error(f"LLM call {base!r}: choices must be non-empty and stand alone")
    if decode.calibrate and not decode.choices:
        raise ctx.error(f"LLM call {base!r}: calibrate applies to a decode with choices only")
    inputs = tuple(
        bindings[n].source.port_for(n, bindings[n].select, bindings[n].is_optional) for n in names
    )
    prefill_params: dict[str, Any] = {"request": base, "template": template}
    if system:
        prefill_params["system"] = system
    if decode.calibrate:
        prefill_params["content_free"] = decode.content_free
        if decode.content_free_keeps:
            prefill_params["content_free_keeps"] = list(decode.content_free_keeps)
    prefill = ctx.add(
        Node(
            f"{base}.prefill",
            Op.LLM_PREFILL,
            inputs=inputs,
            outputs=(Port(ops.STATE, PortType.LLM_STATE),),
            engine=ctx.engine,
            params=prefill_params,
        )
    )
    for name in names:
        ctx.connect(bindings[name].source, prefill.name, name, bindings[name].select)
    decoder = ctx.add(_decode_node(ctx, base, decode))
    ctx.connect(Source(prefill.name, ops.STATE, PortType.LLM_STATE), decoder.name, ops.STATE)
    return decoder


def _decode_node(ctx: LoweringContext, base: str, spec: DecodeSpec) -> Node:
    params: dict[str, Any] = {"request": base, "max_tokens": spec.max_tokens}
    outputs = [Port(ops.TEXT, PortType.TEXT)]
    if spec.parser is not None:
        params["parser"] = str(spec.parser)
        params["num_items"] = spec.num_items
        outputs.append(Port(ops.ITEMS, PortType.TEXTS, spec.num_items))
    if spec.json_schema is not None:
        params["json_schema"] = dict(spec.json_schema)
    if spec.stop:
        params["stop"] = list(spec.stop)
    if spec.ignore_eos:
        params["ignore_eos"] = True
    if spec.choices:
        params["choices"] = list(spec.choices)
    if spec.calibrate:
        params["calibrate"] = True
        if spec.choice_bias:
            params["choice_bias"] = dict(spec.choice_bias)
    if spec.grammar:
        params["grammar"] = spec.grammar
    if spec.temperature > 0:
        params["temperature"] = spec.temperature
        if spec.top_p < 1.0:
            params["top_p"] = spec.top_p
        if spec.top_k > 0:
            params["top_k"] = spec.top_k
        if spec.seed is not None:
            params["seed"] = spec.seed
    return Node(
        f"{base}.decode",
        Op.LLM_DECODE,
        inputs=(Port(ops.STATE, PortType.LLM_STATE),),
        outputs=tuple(outputs),
        engine=ctx.engine,
        params=params,
        is_splittable=spec.parser is not None,
    )


def text_of(node: Node) -> Source:
    """The text output of a decode node."""
    return Source(node.name, ops.TEXT, PortType.TEXT)


def item_slices(num_items: int, per_slice: int) -> list[tuple[int, int]]:
    """``[0:k], [k:2k], ...`` covering ``num_items`` items."""
    return [(i, min(i + per_slice, num_items)) for i in range(0, num_items, per_slice)]
