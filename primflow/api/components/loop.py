"""A loop (or an agent): rounds of sub-workflows chosen at run time by a constrained LLM
decision, lowered into primitives only when their inputs are known.

A round is a *check* (a sub-template whose ``decision`` output is a ``Judge``'s
constrained choice) and, unless the choice ends the loop, the *step* that choice names
(a sub-template per choice). The loop's *state* is a set of named values: the steps
read them and write their next values (a step's output keys are state names; the
state it does not write carries over). The check of round 1 is lowered with the rest
of the query; each later part when the decision before it is known
(:mod:`primflow.api.dynamic`). With one step this is a loop (``while not enough:
step``); with several it is an agent choosing its next tool.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from primflow.api.component import Component, Role
from primflow.api.dynamic import start_loop
from primflow.api.expansion import LoweringContext
from primflow.api.template import BUILTIN_INPUTS, Template
from primflow.graph.ir import PortType

DECISION = "decision"


class Loop(Component):
    """Repeat a check and a chosen step until a decision ends it (kind ``loop``).

    Round r lowers ``check`` (its ``decision`` output must be a ``Judge``'s choice);
    a choice in ``stop_on`` ends the loop, any other choice runs ``steps[choice]``, then
    the next round's check, at most ``max_rounds`` steps in all. The first
    ``min_rounds`` steps run without a check (the loop's one step, lowered with the
    query), so the first decision is round ``min_rounds + 1``'s. Components after the
    loop are lowered once it ends, reading its ``results``.

    Args:
        name: the component's name (default ``loop``).
        check: the sub-template that decides; reads state names and template inputs.
        steps: choice -> the sub-template that choice runs; each output key is a state
            name the step writes the next value of.
        state: state name -> the channel its first value is read from.
        results: state name -> the channel written with its final value.
        stop_on: the choices that end the loop (default ``("yes",)``).
        max_rounds: at most this many steps run (default 3).
        min_rounds: this many steps run before the first check (default 0); fewer than
            ``max_rounds``, and only for a loop with one step.

    Examples:
        >>> from primflow import Judge, Loop, Query, build_template, lower_query
        >>> from primflow.api.components import ExpandQuery
        >>> from primflow.graph.ir import PortType
        >>> check = build_template(
        ...     "enough", Judge(prompt="{notes} Enough to answer {question}?",
        ...                     reads={"notes": "notes", "question": "question"}),
        ...     outputs={"decision": "decision"}, inputs={"notes": PortType.TEXTS})
        >>> more = build_template(
        ...     "more", ExpandQuery(queries="notes_next", num_expansions=1),
        ...     outputs={"notes": "notes_next"}, inputs={"notes": PortType.TEXTS})
        >>> loop = Loop(check=check, steps={"no": more}, state={"notes": "question_list"},
        ...             results={"notes": "final_notes"}, max_rounds=2)
        >>> template = build_template("notes", loop, outputs={"notes": "final_notes"})
        >>> lowered = lower_query(template, Query("Why?"))
        >>> sorted(lowered.growth.triggers), lowered.growth.num_rounds
        (['loop.r1.judge.decode'], 0)
    """

    kind = "loop"
    is_dynamic = True

    def __init__(
        self,
        name: str | None = None,
        *,
        check: Template,
        steps: Mapping[str, Template],
        state: Mapping[str, str],
        results: Mapping[str, str],
        stop_on: Sequence[str] = ("yes",),
        max_rounds: int = 3,
        min_rounds: int = 0,
    ) -> None:
        self.check = check
        self.steps = dict(steps)
        self.state_names = tuple(state)
        self.stop_on = tuple(stop_on)
        self.max_rounds = max_rounds
        self.min_rounds = min_rounds
        self._result_names = tuple(results)
        super().__init__(name, reads=dict(state), writes=dict(results))

    def input_roles(self) -> dict[str, Role]:
        return {name: Role((PortType.ANY,)) for name in self.state_names}

    def output_roles(self) -> tuple[str, ...]:
        return self._result_names

    def output_types(self, input_types: Mapping[str, PortType]) -> dict[str, PortType]:
        return {name: input_types[name] for name in self._result_names}

    def sub_templates(self) -> list[Template]:
        return [self.check, *self.steps.values()]

    def engine_names(self) -> tuple[str, ...]:
        names = [c.engine_names() for t in self.sub_templates() for c in t.components]
        return tuple(dict.fromkeys(n for group in names for n in group))

    def validate(self) -> None:
        if self.max_rounds < 1:
            raise ValueError(f"max_rounds must be >= 1, got {self.max_rounds}")
        if not 0 <= self.min_rounds < self.max_rounds:
            raise ValueError(
                f"min_rounds must be >= 0 and < max_rounds ({self.max_rounds}), "
                f"got {self.min_rounds}"
            )
        if self.min_rounds and len(self.steps) != 1:
            raise ValueError("min_rounds needs a loop with one step (which one would run?)")
        if DECISION not in self.check.outputs:
            raise ValueError(f"the check template {self.check.name!r} has no 'decision' output")
        if not self.steps:
            raise ValueError("a loop needs at least one step")
        overlap = sorted(set(self.stop_on) & set(self.steps))
        if overlap:
            raise ValueError(f"choice {overlap[0]!r} both stops the loop and names a step")
        unknown = sorted(set(self._result_names) - set(self.state_names))
        if unknown:
            raise ValueError(f"results name {unknown[0]!r}, which is not a state name")
        known = set(self.state_names) | set(BUILTIN_INPUTS)
        for template in self.sub_templates():
            stray = sorted(set(template.inputs) - known)
            if stray:
                raise ValueError(
                    f"sub-template {template.name!r} reads {stray[0]!r}, which is neither "
                    "a state name nor a query input"
                )
        for choice, step in self.steps.items():
            stray = sorted(set(step.outputs) - set(self.state_names))
            if stray:
                raise ValueError(f"step {choice!r} writes {stray[0]!r}, which is not a state name")

    def expand(self, ctx: LoweringContext) -> None:
        start_loop(self, ctx)
