"""Workflows written as data: a YAML or JSON spec, loaded without running any code.

The spec is parsed with ``yaml.safe_load`` (or ``json``), validated with pydantic, turned
into components and built into a :class:`~primflow.api.template.Template`, so it gets the
same checks as a template written in Python. Every error names the offending field,
e.g. ``steps[2].top_k: must be > 0``. Shape::

    name: naive_rag
    steps:                       # a chain unless a step says `after: [...]`
      - {name: chunk, kind: chunk}
      - {name: embed_docs, kind: embed, reads: {items: chunks}, writes: {vectors: doc_vectors}}
      ...
    outputs: {answer: answer, hits: hits}

A step of ``kind: function`` names a Python function made a component with
``@function`` by its ``module:qualname`` (``function: "mymodule:keyword_filter"``),
with ``settings:`` for its keyword-only parameters. The spec still runs no code: the
function must already be registered, i.e. its module imported before the spec loads.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, ValidationError

from primflow.api.component import Component, Flow
from primflow.api.components import KINDS, Aggregate, Generate, Judge, Loop
from primflow.api.config import SynthesisMode
from primflow.api.function import FunctionComponent, registered_function
from primflow.api.template import Template, TemplateError, build_template
from primflow.graph.ir import PortType
from primflow.graph.ops import AggregateMode


class SpecError(ValueError):
    """A spec is invalid; the message names the field (``steps[i].field``) at fault.

    ``unregistered_function`` is the ``module:qualname`` of a ``kind: function`` step
    whose function is not registered (its module was not imported), else None.
    """

    def __init__(self, message: str, unregistered_function: str | None = None) -> None:
        super().__init__(message)
        self.unregistered_function = unregistered_function


class _UnregisteredFunction(ValueError):
    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    after: list[str] | None = None  # default: the previous step
    reads: dict[str, str] = {}
    writes: dict[str, str] = {}
    engine: str | None = None


class _Plain(_Step):
    kind: Literal["chunk", "embed", "situate"]


class _Judge(_Step):
    kind: Literal["judge"]
    prompt: str | None = None  # with ``reads`` binding its placeholders
    choices: Annotated[list[str], Field(min_length=1)] | None = None
    calibrate: bool = False  # decide by calibrated log-probabilities (Judge)
    content_free: str | None = None
    bias: dict[str, float] | None = None


class _Loop(_Step):
    """``reads``: state name -> channel of its first value; ``writes``: state name ->
    channel of its final value; ``check`` and each of ``steps`` are sub-specs."""

    kind: Literal["loop"]
    check: _Spec
    steps: Annotated[dict[str, _Spec], Field(min_length=1)]
    stop_on: Annotated[list[str], Field(min_length=1)] = ["yes"]
    max_rounds: PositiveInt = 3
    min_rounds: NonNegativeInt = 0


class _Ingest(_Step):
    kind: Literal["ingest"]
    collection: str | None = None


class _TopK(_Step):
    kind: Literal["search", "rerank", "web_search"]
    top_k: PositiveInt | None = None


class _Expand(_Step):
    kind: Literal["expand"]
    num_expansions: PositiveInt | None = None


class _Generate(_Step):
    kind: Literal["generate"]
    prompt: str | None = None
    config_prompt: str | None = None
    optional: list[str] = []
    max_tokens: PositiveInt | None = None
    stop: list[str] | None = None


class _Synthesize(_Step):
    kind: Literal["synthesize"]
    mode: SynthesisMode | None = None


class _Condition(_Step):
    kind: Literal["condition"]
    predicate: str = "yes"


class _Aggregate(_Step):
    kind: Literal["aggregate"]
    parts: Annotated[list[str], Field(min_length=1)]
    mode: AggregateMode = AggregateMode.CONCAT
    top_k: PositiveInt | None = None


class _Function(_Step):
    kind: Literal["function"]
    function: Annotated[str, Field(pattern=r"^[\w.]+:[\w.]+$")]  # module:qualname
    settings: dict[str, Any] = {}


_StepSpec = Annotated[
    _Plain
    | _Judge
    | _Loop
    | _Ingest
    | _TopK
    | _Expand
    | _Generate
    | _Synthesize
    | _Condition
    | _Aggregate
    | _Function,
    Field(discriminator="kind"),
]
# Every spec kind: the built-in components' and ``function``.
SPEC_KINDS = (*KINDS, Loop.kind, FunctionComponent.kind)


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    inputs: dict[str, PortType] = {}
    steps: Annotated[list[_StepSpec], Field(min_length=1)]
    outputs: Annotated[dict[str, str], Field(min_length=1)]


_Loop.model_rebuild()


def load_spec(path: str | Path) -> Template:
    """Load a ``.yaml``/``.yml``/``.json`` spec file into a validated template.

    The spec is data (no code runs); errors name the field at fault, e.g.
    ``steps[1].top_k``.

    Examples:
        >>> import json, pathlib, tempfile
        >>> from primflow import load_spec
        >>> spec = {
        ...     "name": "web_answer",
        ...     "steps": [
        ...         {"name": "web", "kind": "web_search", "top_k": 2,
        ...          "reads": {"queries": "question_list"}, "writes": {"hits": "web_hits"}},
        ...         {"name": "answer", "kind": "generate", "config_prompt": "search_answer",
        ...          "reads": {"question": "question", "search_results": "web_hits"},
        ...          "writes": {"text": "answer"}},
        ...     ],
        ...     "outputs": {"answer": "answer"},
        ... }
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "web_answer.json"
        >>> _ = path.write_text(json.dumps(spec))
        >>> template = load_spec(path)
        >>> [(c.name, c.kind) for c in template.components]
        [('web', 'web_search'), ('answer', 'generate')]
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read spec {str(file)!r}: {exc.strerror}") from None
    if file.suffix.lower() == ".json":
        return parse_spec(text, "json", where=str(file))
    return parse_spec(text, "yaml", where=str(file))


def parse_spec(text: str, fmt: Literal["yaml", "json"] = "yaml", where: str = "spec") -> Template:
    data = _parse(text, fmt, where)
    if not isinstance(data, dict):
        raise SpecError(f"{where}: expected a mapping with name, steps and outputs")
    try:
        spec = _Spec.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(err) for err in exc.errors()]
        raise SpecError(f"{where}: " + "; ".join(problems)) from None
    return _build(spec, where)


def _parse(text: str, fmt: str, where: str) -> Any:
    if fmt == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"{where}: malformed JSON at line {exc.lineno}: {exc.msg}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"{where}: malformed YAML{line}: {problem}") from None


def _describe(err: Any) -> str:
    # A union member's tag (after ``steps[i]``, at any depth) is not a field.
    loc = [
        part
        for i, part in enumerate(err["loc"])
        if not (i >= 2 and part in SPEC_KINDS and isinstance(err["loc"][i - 1], int))
    ]
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    ctx = err.get("ctx") or {}
    kind = err["type"]
    if kind == "greater_than":
        message = f"must be > {ctx['gt']}"
    elif kind == "missing":
        message = "is required"
    elif kind == "extra_forbidden":
        message = "is not a known field"
    elif kind == "union_tag_invalid":
        path += ".kind"
        message = f"unknown component {ctx.get('tag')!r} (known: {', '.join(SPEC_KINDS)})"
    elif kind == "union_tag_not_found":
        path += ".kind"
        message = "is required"
    else:
        message = err["msg"][:1].lower() + err["msg"][1:]
    return f"{path}: {message}"


def _build(spec: _Spec, where: str) -> Template:
    components: list[Component] = []
    index_of: dict[str, int] = {}
    for i, step in enumerate(spec.steps):
        if step.name in index_of:
            raise SpecError(f"{where}: steps[{i}].name: {step.name!r} is already used")
        index_of[step.name] = i
        try:
            components.append(_component(step))
        except _UnregisteredFunction as exc:
            raise SpecError(f"{where}: steps[{i}] ({step.name}): {exc}", exc.name) from None
        except (TypeError, ValueError) as exc:
            raise SpecError(f"{where}: steps[{i}] ({step.name}): {exc}") from None
    edges = _edges(spec, index_of, components, where)
    targets = {b for _, b in edges}
    flow = Flow(
        components,
        edges,
        [c for c in components if c not in targets],
        components[-1:],
    )
    try:
        return build_template(spec.name, flow, outputs=spec.outputs, inputs=spec.inputs)
    except TemplateError as exc:
        if exc.component in index_of:
            i = index_of[exc.component]
            message = str(exc).split(": ", 1)[1]
            raise SpecError(f"{where}: steps[{i}] ({exc.component}): {message}") from None
        raise SpecError(f"{where}: {exc}") from None


def _edges(
    spec: _Spec, index_of: dict[str, int], components: list[Component], where: str
) -> list[tuple[Component, Component]]:
    edges: list[tuple[Component, Component]] = []
    for i, step in enumerate(spec.steps):
        after = step.after
        if after is None:  # a chain by default
            after = [spec.steps[i - 1].name] if i > 0 else []
        for name in after:
            if name not in index_of:
                raise SpecError(f"{where}: steps[{i}].after: unknown step {name!r}")
            edges.append((components[index_of[name]], components[i]))
    return edges


def _component(step: Any) -> Component:
    params = step.model_dump(
        exclude={"kind", "name", "after", "reads", "writes"}, exclude_none=True
    )
    if isinstance(step, _Generate):
        return Generate(step.name, reads=step.reads, **_writes(step, {"text"}), **params)  # type: ignore[arg-type]
    if isinstance(step, _Aggregate):
        return Aggregate(step.name, **_writes(step, {"result"}), **params)  # type: ignore[arg-type]
    if isinstance(step, _Judge):
        return _judge(step)
    if isinstance(step, _Loop):
        return _loop(step)
    if isinstance(step, _Function):
        try:
            spec = registered_function(step.function)
        except KeyError as exc:
            raise _UnregisteredFunction(f"function: {exc.args[0]}", step.function) from None
        return spec(
            step.name, reads=step.reads, writes=step.writes, engine=step.engine, **step.settings
        )
    cls = KINDS[step.kind]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "name", "engine"}
    for section, bindings in (("reads", step.reads), ("writes", step.writes)):
        for role in bindings:
            if role not in accepted:
                raise ValueError(f"{section}: kind {step.kind!r} has no channel role {role!r}")
    return cls(step.name, **step.reads, **step.writes, **params)


def _judge(step: _Judge) -> Judge:
    decision = _writes(step, {"decision"}).get("decision", "decision")
    choices = tuple(step.choices) if step.choices is not None else ("yes", "no")
    scoring: dict[str, Any] = {"calibrate": step.calibrate, "bias": step.bias}
    if step.content_free is not None:
        scoring["content_free"] = step.content_free
    if step.prompt is None:
        unknown = sorted(set(step.reads) - {"question"})
        if unknown:
            raise ValueError(f"reads: kind 'judge' has no channel role {unknown[0]!r}")
        return Judge(
            step.name,
            question=step.reads.get("question", "question"),
            decision=decision,
            engine=step.engine,
            choices=choices,
            **scoring,
        )
    return Judge(
        step.name,
        prompt=step.prompt,
        reads=step.reads,
        decision=decision,
        engine=step.engine,
        choices=choices,
        **scoring,
    )


def _loop(step: _Loop) -> Loop:
    where = f"loop {step.name!r}"
    steps = {choice: _build(sub, f"{where} steps.{choice}") for choice, sub in step.steps.items()}
    return Loop(
        step.name,
        check=_build(step.check, f"{where} check"),
        steps=steps,
        state=step.reads,
        results=step.writes,
        stop_on=step.stop_on,
        max_rounds=step.max_rounds,
        min_rounds=step.min_rounds,
    )


def _writes(step: Any, roles: set[str]) -> dict[str, str]:
    unknown = set(step.writes) - roles
    if unknown:
        raise ValueError(f"writes: kind {step.kind!r} has no output {sorted(unknown)[0]!r}")
    return dict(step.writes)
