"""LLM generation with a prompt whose placeholders read channels; and the judge.

A ``Generate`` prompt is either given literally or named from the query's config
(``config_prompt``, e.g. "search_answer"), so each query may change it. Every
placeholder must be bound to a channel explicitly; placeholders listed in ``optional``
may receive nothing at run time (their producer was skipped by a CONDITION) and then
render as "".

A Generate call writes a free-text answer, so it follows the query's ``ignore_eos``; the
judge's decision is a short structured reply that must end where the model ends it, so
it never does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

from primflow.api.component import Component, Role
from primflow.api.components.llm_call import (
    Binding,
    DecodeSpec,
    add_llm_call,
    answer_decode_spec,
    text_of,
)
from primflow.api.config import PROMPT_PLACEHOLDERS, check_placeholders
from primflow.api.expansion import LoweringContext
from primflow.engines.llm.choice_scoring import CONTENT_FREE, check_bias
from primflow.graph import ops
from primflow.graph.ir import PortType

_ANY_VALUE = Role((PortType.ANY,))
_CONFIG_VALUES = frozenset({"num_expansions"})  # filled from the config, not a channel


class Generate(Component):
    """One LLM call with a prompt whose placeholders read channels (spec kind ``generate``).

    Give the prompt literally (``prompt=``) or name one of the query's config prompts
    (``config_prompt=``, e.g. ``"search_answer"``), so each query may change it. Every
    ``{placeholder}`` must be bound to a channel in ``reads``; write ``{{`` for a literal
    brace. Put early inputs first: the part of the prompt before the first late input is
    prefilled while that input is still being computed. The answer follows the query's
    ``max_tokens``, ``ignore_eos``, sampling settings (``temperature``, ``top_p``,
    ``sample_top_k``, ``seed``) and ``stop`` strings (after the component's own).

    Args:
        name: the component's name (default ``generate``).
        prompt: the prompt template.
        config_prompt: the name of a prompt in ``QueryConfig.prompts`` instead.
        reads: placeholder -> channel, for every placeholder of the prompt.
        optional: placeholders whose channel may be absent at run time (its producer was
            skipped by a ``Condition``); they then render as "".
        text: channel written with the generated text (type ``text``).
        max_tokens: answer length; ``None`` reads ``config.max_tokens``.
        stop: stop strings.
        engine: engine name (default ``llm``).
        grammar: a GBNF grammar the text must follow (a structured reply, so the
            query's ``ignore_eos`` does not apply), e.g. an arithmetic expression.

    Examples:
        >>> from primflow import Generate, Query, build_template, lower
        >>> haiku = Generate(
        ...     "haiku",
        ...     prompt="Write a haiku about {topic}.",
        ...     reads={"topic": "question"},
        ...     text="poem",
        ...     max_tokens=32,
        ... )
        >>> template = build_template("haiku", haiku, outputs={"answer": "poem"})
        >>> graph = lower(template, Query("databases"))
        >>> [(n.name, str(n.op)) for n in graph]
        [('input.question', 'input'), ('haiku.prefill', 'llm_prefill'),
         ('haiku.decode', 'llm_decode'), ('output.answer', 'output')]
        >>> graph.node("haiku.decode").params["max_tokens"]
        32
    """

    kind = "generate"
    default_engine = "llm"

    def __init__(
        self,
        name: str | None = None,
        *,
        prompt: str | None = None,
        config_prompt: str | None = None,
        reads: Mapping[str, str] | None = None,
        optional: Iterable[str] = (),
        text: str = "text",
        max_tokens: int | None = None,
        stop: Sequence[str] | None = None,
        engine: str | None = None,
        grammar: str | None = None,
    ) -> None:
        self.prompt = prompt
        self.grammar = grammar
        self.config_prompt = config_prompt
        self._placeholders = self._find_placeholders()
        self.optional = frozenset(optional)
        self.max_tokens = max_tokens
        self.stop = list(stop) if stop else None
        self._given_reads = dict(reads or {})
        super().__init__(name, engine=engine, reads=self._given_reads, writes={"text": text})

    def _find_placeholders(self) -> list[str]:
        if (self.prompt is None) == (self.config_prompt is None):
            raise ValueError("give exactly one of prompt= or config_prompt=")
        if self.config_prompt is not None:
            if self.config_prompt not in PROMPT_PLACEHOLDERS:
                known = ", ".join(PROMPT_PLACEHOLDERS)
                raise ValueError(f"config_prompt {self.config_prompt!r} is unknown ({known})")
            _, allowed = PROMPT_PLACEHOLDERS[self.config_prompt]
            return sorted(allowed - _CONFIG_VALUES)
        assert self.prompt is not None
        try:
            return ops.placeholders(self.prompt)
        except ValueError as exc:
            raise ValueError(f"prompt is malformed ({exc}); write {{{{ for a brace") from None

    def input_roles(self) -> dict[str, Role]:
        return {
            n: Role(_ANY_VALUE.types, is_optional=n in self.optional) for n in self._placeholders
        }

    def output_roles(self) -> tuple[str, ...]:
        return ("text",)

    def output_types(self, input_types: Mapping[str, PortType]) -> dict[str, PortType]:
        return {"text": PortType.TEXT}

    def validate(self) -> None:
        unbound = [n for n in self._placeholders if n not in self._given_reads]
        if unbound:
            raise ValueError(
                f"prompt placeholder {{{unbound[0]}}} is not bound to a channel; "
                f"bind it with reads={{'{unbound[0]}': <channel>}}"
            )
        stray = sorted(self.optional - set(self._placeholders))
        if stray:
            raise ValueError(f"optional names {stray[0]!r}, which is not a prompt placeholder")
        if self.max_tokens is not None and self.max_tokens <= 0:
            raise ValueError(f"max_tokens must be > 0, got {self.max_tokens}")

    def template_for(self, ctx: LoweringContext) -> str:
        if self.prompt is not None:
            return self.prompt
        assert self.config_prompt is not None
        template: str = getattr(ctx.config.prompts, self.config_prompt)
        required, allowed = PROMPT_PLACEHOLDERS[self.config_prompt]
        check_placeholders(template, required, allowed, f"prompts.{self.config_prompt}")
        return template.replace("{num_expansions}", str(ctx.config.num_expansions))

    def decode_spec(self, ctx: LoweringContext) -> DecodeSpec:
        spec = answer_decode_spec(ctx, self.max_tokens or ctx.config.max_tokens, self.stop)
        return dataclasses.replace(
            spec, ignore_eos=spec.ignore_eos and self.grammar is None, grammar=self.grammar
        )

    def expand(self, ctx: LoweringContext) -> None:
        template = self.template_for(ctx)
        bindings = {
            n: Binding(ctx.read(n), is_optional=n in self.optional)
            for n in ops.placeholders(template)
        }
        decoder = add_llm_call(ctx, ctx.name(), template, bindings, self.decode_spec(ctx))
        ctx.write("text", text_of(decoder))


class Judge(Generate):
    """A constrained decision by a (usually smaller) LLM, e.g. whether to search (kind ``judge``).

    The decode is constrained to exactly one of ``choices`` (a grammar on llama.cpp), so
    the decision is never free text parsed afterwards. With ``calibrate`` an engine that
    can score (the embedded llama.cpp engine) compares the choices' log-probabilities
    after the prompt instead, minus their log-probabilities after the same prompt with
    every placeholder replaced by ``content_free`` (contextual calibration; the prior
    is computed once per prompt template and model, and cached), plus ``bias``; the
    scores are recorded with the decision. Remote engines keep the grammar. Uses the query's
    ``prompts.judge`` (or ``prompt`` with its ``reads``) and ``config.judge_max_tokens``
    (raised to fit the longest choice), stops at a newline and never follows
    ``ignore_eos``. Feed its decision to a ``Condition``, or to a ``Loop``'s ``until``.

    Args:
        name: the component's name (default ``judge``).
        question: channel read: the question (type ``text``), for the config prompt.
        decision: channel written with the chosen answer (type ``text``).
        engine: engine name (default ``judge``, an LLM engine of its own).
        prompt: a prompt of its own instead of ``prompts.judge``; bind its
            placeholders with ``reads``.
        reads: placeholder -> channel, for ``prompt``.
        choices: the allowed answers (default ``("yes", "no")``).
        calibrate: decide by calibrated log-probabilities (see above).
        content_free: what every placeholder renders as in the calibration prompt.
        bias: choice -> a number added to its calibrated score (a threshold).
        keep_in_prior: placeholders the content-free prompt keeps as they are (e.g.
            ``("question",)``: the prior is then the question's own, one short prefill
            per question sharing the prompt's prefix, and only the other inputs'
            effect is measured).

    Examples:
        >>> from primflow import Judge, Query, build_template, lower
        >>> judge = Judge(question="question", decision="decision")
        >>> template = build_template("judge_only", judge, outputs={"decision": "decision"})
        >>> decode = lower(template, Query("Who won the 1921 Nobel Prize?")).node("judge.decode")
        >>> decode.engine, decode.params["max_tokens"], decode.params["choices"]
        ('judge', 4, ['yes', 'no'])
    """

    kind = "judge"
    default_engine = "judge"

    def __init__(
        self,
        name: str | None = None,
        *,
        question: str = "question",
        decision: str = "decision",
        engine: str | None = None,
        prompt: str | None = None,
        reads: Mapping[str, str] | None = None,
        choices: Sequence[str] = ("yes", "no"),
        calibrate: bool = False,
        content_free: str = CONTENT_FREE,
        bias: Mapping[str, float] | None = None,
        keep_in_prior: Sequence[str] = (),
    ) -> None:
        self.choices = tuple(str(c) for c in choices)
        self.calibrate = calibrate
        self.content_free = content_free
        self.bias = dict(bias or {})
        self.keep_in_prior = tuple(keep_in_prior)
        if prompt is None:
            super().__init__(
                name,
                config_prompt="judge",
                reads={"question": question},
                text=decision,
                stop=["\n"],
                engine=engine,
            )
        else:
            super().__init__(
                name, prompt=prompt, reads=reads, text=decision, stop=["\n"], engine=engine
            )

    def validate(self) -> None:
        super().validate()
        if not self.choices or any(not c.strip() for c in self.choices):
            raise ValueError(f"choices must be non-empty answers, got {list(self.choices)}")
        if len(set(self.choices)) != len(self.choices):
            raise ValueError(f"choices repeat an answer: {list(self.choices)}")
        self.bias = check_bias(self.bias, self.choices, f"judge {self.name!r}")
        if self.bias and not self.calibrate:
            raise ValueError(f"judge {self.name!r}: bias applies with calibrate=True only")
        stray = [n for n in self.keep_in_prior if n not in self._placeholders]
        if stray:
            raise ValueError(
                f"judge {self.name!r}: keep_in_prior names {stray[0]!r}, which is not a "
                f"prompt placeholder ({', '.join(self._placeholders)})"
            )
        if self.keep_in_prior and not self.calibrate:
            raise ValueError(f"judge {self.name!r}: keep_in_prior applies with calibrate=True only")
        if self.calibrate and not self.content_free.strip():
            raise ValueError(f"judge {self.name!r}: content_free must be non-empty text")

    def decode_spec(self, ctx: LoweringContext) -> DecodeSpec:
        # Worst case one token per character, plus the end-of-generation token.
        max_tokens = max(ctx.config.judge_max_tokens, max(map(len, self.choices)) + 1)
        return DecodeSpec(
            max_tokens=max_tokens,
            stop=self.stop,
            choices=self.choices,
            calibrate=self.calibrate,
            content_free=self.content_free,
            content_free_keeps=self.keep_in_prior,
            choice_bias=self.bias or None,
        )
