"""Answer synthesis over retrieved passages, in the query's synthesis mode.

- one_shot: one LLM call over all passages.
- refine: a chain of calls; call 0 answers from the first ``passages_per_call``
  passages, call i improves the previous answer with the next ones.
- tree: one call per group of passages (the leaves), then calls that combine
  ``tree_fanout`` partial answers, level by level, up to a single root. A group left
  alone at a level moves up unchanged.

The passage count comes from the context channel's known size (top-k); each call reads
its passages through a ``select`` slice of that list. Every call writes free text, so
each follows the query's ``ignore_eos``, sampling settings and stop strings.
"""

from __future__ import annotations

from collections.abc import Mapping

from primflow.api.component import Component, Role
from primflow.api.components.llm_call import (
    Binding,
    DecodeSpec,
    add_llm_call,
    answer_decode_spec,
    item_slices,
    text_of,
)
from primflow.api.config import PROMPT_PLACEHOLDERS, SynthesisMode, check_placeholders
from primflow.api.expansion import LoweringContext, Source
from primflow.graph.ir import PortType


class Synthesize(Component):
    """Write the answer from retrieved passages (spec kind ``synthesize``).

    Modes: ``one_shot`` (one LLM call over all passages), ``refine`` (call 0 answers from
    the first ``passages_per_call`` passages, each later call improves the answer with the
    next ones) or ``tree`` (one call per group of passages, then calls that combine
    ``tree_fanout`` partial answers level by level up to one root). The passage count is the
    context channel's known size (its top-k). Every call follows ``ignore_eos`` and the
    query's sampling settings and stop strings.

    Args:
        name: the component's name (default ``synthesize``).
        question: channel read: the question (type ``text``).
        context: channel read: the passages (type ``hits``, ``chunks`` or ``texts``).
        answer: channel written with the answer (type ``text``).
        mode: synthesis mode; ``None`` reads ``config.synthesis_mode``.
        engine: engine name (default ``llm``).

    Examples:
        >>> from primflow import Op, Query, QueryConfig, Synthesize, build_template, lower
        >>> from primflow.graph.ir import PortType
        >>> synthesize = Synthesize(question="question", context="passages", answer="answer")
        >>> outputs, inputs = {"answer": "answer"}, {"passages": PortType.TEXTS}
        >>> template = build_template("answer", synthesize, outputs=outputs, inputs=inputs)
        >>> def num_llm_calls(mode):
        ...     config = QueryConfig(synthesis_mode=mode)
        ...     query = Query("Why?", config=config, inputs={"passages": ["a", "b", "c", "d"]})
        ...     return len(lower(template, query).nodes_with_op(Op.LLM_DECODE))
        >>> num_llm_calls("one_shot"), num_llm_calls("refine"), num_llm_calls("tree")
        (1, 4, 7)
    """

    kind = "synthesize"
    default_engine = "llm"

    def __init__(
        self,
        name: str | None = None,
        *,
        question: str = "question",
        context: str = "hits",
        answer: str = "answer",
        mode: SynthesisMode | str | None = None,
        engine: str | None = None,
    ) -> None:
        super().__init__(
            name,
            engine=engine,
            reads={"question": question, "context": context},
            writes={"answer": answer},
        )
        self.mode = SynthesisMode(mode) if mode is not None else None

    def input_roles(self) -> dict[str, Role]:
        context_types = (PortType.HITS, PortType.CHUNKS, PortType.TEXTS)
        return {"question": Role((PortType.TEXT,)), "context": Role(context_types)}

    def output_roles(self) -> tuple[str, ...]:
        return ("answer",)

    def output_types(self, input_types: Mapping[str, PortType]) -> dict[str, PortType]:
        return {"answer": PortType.TEXT}

    def expand(self, ctx: LoweringContext) -> None:
        question, context = ctx.read("question"), ctx.read("context")
        mode = self.mode or ctx.config.synthesis_mode
        slices = item_slices(context.num_items or 0, ctx.config.passages_per_call)
        if mode is SynthesisMode.ONE_SHOT or len(slices) <= 1:
            answer = _answer_call(ctx, ctx.name(), question, Binding(context))
        elif mode is SynthesisMode.REFINE:
            answer = _refine_chain(ctx, question, context, slices)
        else:
            answer = _tree(ctx, question, context, slices)
        ctx.write("answer", answer)


def _prompt(ctx: LoweringContext, name: str) -> str:
    template: str = getattr(ctx.config.prompts, name)
    check_placeholders(template, *PROMPT_PLACEHOLDERS[name], f"prompts.{name}")
    return template


def _answer_decode(ctx: LoweringContext) -> DecodeSpec:
    return answer_decode_spec(ctx, ctx.config.max_tokens)


def _answer_call(ctx: LoweringContext, base: str, question: Source, context: Binding) -> Source:
    bindings = {"question": Binding(question), "context": context}
    decode = _answer_decode(ctx)
    return text_of(add_llm_call(ctx, base, _prompt(ctx, "answer"), bindings, decode))


def _refine_chain(
    ctx: LoweringContext, question: Source, context: Source, slices: list[tuple[int, int]]
) -> Source:
    answer = _answer_call(ctx, ctx.name("step0"), question, Binding(context, slices[0]))
    decode = _answer_decode(ctx)
    for step, select in enumerate(slices[1:], start=1):
        bindings = {
            "question": Binding(question),
            "answer": Binding(answer),
            "context": Binding(context, select),
        }
        base = ctx.name(f"step{step}")
        answer = text_of(add_llm_call(ctx, base, _prompt(ctx, "refine"), bindings, decode))
    return answer


def _tree(
    ctx: LoweringContext, question: Source, context: Source, slices: list[tuple[int, int]]
) -> Source:
    level = [
        _answer_call(ctx, ctx.name(f"leaf{i}"), question, Binding(context, select))
        for i, select in enumerate(slices)
    ]
    fanout = ctx.config.tree_fanout
    depth = 1
    while len(level) > 1:
        groups = [level[i : i + fanout] for i in range(0, len(level), fanout)]
        level = [
            _combine(ctx, ctx.name(f"level{depth}_{i}"), question, group)
            if len(group) > 1
            else group[0]
            for i, group in enumerate(groups)
        ]
        depth += 1
    return level[0]


def _combine(ctx: LoweringContext, base: str, question: Source, answers: list[Source]) -> Source:
    names = [f"answer_{i}" for i in range(len(answers))]
    listed = "\n".join(f"- {{{n}}}" for n in names)
    template = _prompt(ctx, "combine").replace("{answers}", listed)
    bindings = {"question": Binding(question)} | {
        n: Binding(a) for n, a in zip(names, answers, strict=True)
    }
    decode = _answer_decode(ctx)
    return text_of(add_llm_call(ctx, base, template, bindings, decode))
