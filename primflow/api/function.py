"""Components from decorated Python functions: ``@function``.

A function of your own becomes a component factory. Its signature is its contract:

- each positional parameter is an input role (a port), typed by its annotation:
  ``str`` (text), ``list[str]``, ``list[Chunk]``, ``list[Hit]``, ``numpy.ndarray``
  (vectors), ``bool`` or ``Any``; ``X | None = None`` (or ``Any = None``) makes the
  role optional: unbound, the function gets None;
- each keyword-only parameter (after ``*``) is a *setting*: it needs a default, and a
  component may override it (``keyword_filter(min_overlap=2)``); settings travel in
  the node's params, so every call of that component gets them;
- the return annotation types the output: one port named ``result`` unless
  ``outputs=`` names others (several names: return a ``tuple[...]`` of that length).

The component lowers to one primitive: ``Op.FUNCTION`` on a function engine (the
``python`` engine by default, a thread pool; ``engine=`` names another, e.g. a process
pool), or ``Op.INLINE_FUNCTION`` when declared ``is_cheap``, which the graph scheduler
runs itself as it runs CONDITION and AGGREGATE. Async functions run on the engine's
event loop and cannot be inline. The node's ``params["function"]`` is a
:class:`~primflow.graph.ops.FunctionRef`, which prints as ``module:qualname``.

``batchable=True`` declares a *map*: exactly one list parameter (the items), any other
ports broadcast, and a list result with one entry per item, so
``f(items[:k]) + f(items[k:]) == f(items)``. The passes may then cut a big call into
pipelined stages and the engine may merge calls of several queries into one; the
engine checks the one-to-one contract on every call.

Every decorated function is registered under its ``module:qualname``, which a YAML
spec names (``kind: function, function: "mymodule:keyword_filter"``): a spec stays
data, so the module that defines the function must be imported before the spec is
loaded (:func:`registered_function`).
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Union, overload

import numpy as np

from primflow.api.component import Component, Role
from primflow.api.expansion import LoweringContext, Source
from primflow.graph.ir import Node, Op, Port, PortType
from primflow.graph.ops import FunctionRef
from primflow.values import Chunk, Hit

DEFAULT_ENGINE = "python"
DEFAULT_OUTPUT = "result"

_ANNOTATION_TYPES: dict[Any, PortType] = {
    str: PortType.TEXT,
    list[str]: PortType.TEXTS,
    list[Chunk]: PortType.CHUNKS,
    list[Hit]: PortType.HITS,
    np.ndarray: PortType.VECTORS,
    bool: PortType.BOOL,
    Any: PortType.ANY,
}
SUPPORTED = "str, list[str], list[Chunk], list[Hit], numpy.ndarray, bool, Any"

_REGISTRY: dict[str, FunctionSpec] = {}


def port_type_of(annotation: Any) -> PortType | None:
    """The port type an annotation stands for, or None if it stands for none."""
    if typing.get_origin(annotation) is np.ndarray:  # numpy.typing.NDArray[...]
        return PortType.VECTORS
    try:
        return _ANNOTATION_TYPES.get(annotation)
    except TypeError:  # an unhashable annotation
        return None


def _optional_inner(annotation: Any) -> Any | None:
    """``X`` for ``X | None`` / ``Optional[X]``, else None."""
    if typing.get_origin(annotation) not in (Union, types.UnionType):
        return None
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if len(args) == 1 and len(typing.get_args(annotation)) == 2 else None


@dataclass(frozen=True, slots=True)
class _Port:
    name: str
    type: PortType
    is_optional: bool


class FunctionSpec:
    """What ``@function`` makes of a function: call it to get a component.

    ``spec(name=None, *, reads=None, writes=None, engine=None, **settings)`` returns a
    :class:`FunctionComponent`; ``spec.fn`` is the function itself (call it directly
    in your own tests), ``spec.ref`` the reference its nodes carry.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        batchable: bool,
        is_cheap: bool,
        engine: str,
        outputs: tuple[str, ...],
    ) -> None:
        self.fn = fn
        self.name = f"{getattr(fn, '__module__', None) or '__main__'}:{fn.__qualname__}"
        self.batchable = batchable
        self.is_cheap = is_cheap
        self.engine = engine
        self.is_async = inspect.iscoroutinefunction(fn)
        hints = _type_hints(fn, self.name)
        self.ports, self.settings = _parameters(fn, hints, self.name)
        self.outputs = _outputs(hints, outputs, self.name)
        self.items_port = self._check_modes()
        self.ref = FunctionRef(
            fn,
            self.name,
            tuple(p.name for p in self.ports),
            tuple(self.outputs),
            self.is_async,
            self.items_port,
        )
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def _check_modes(self) -> str | None:
        if self.is_cheap and self.is_async:
            raise TypeError(
                f"function {self.name}: is_cheap runs it inline on the event loop, which "
                "cannot await; an async function already runs on its engine's loop"
            )
        if self.is_cheap and self.batchable:
            raise TypeError(f"function {self.name}: an inline (is_cheap) call is never batched")
        if not self.batchable:
            return None
        lists = [p.name for p in self.ports if p.type.is_list]
        if len(lists) != 1:
            raise TypeError(
                f"function {self.name}: batchable needs exactly one list parameter (the "
                f"items), got {len(lists)}: {', '.join(lists) or 'none'}"
            )
        if len(self.outputs) != 1 or not next(iter(self.outputs.values())).is_list:
            raise TypeError(
                f"function {self.name}: batchable needs one list result, one entry per item"
            )
        return lists[0]

    def __call__(
        self,
        name: str | None = None,
        *,
        reads: Mapping[str, str | None] | None = None,
        writes: Mapping[str, str | None] | None = None,
        engine: str | None = None,
        **settings: Any,
    ) -> FunctionComponent:
        return FunctionComponent(
            self, name, reads=reads, writes=writes, engine=engine, settings=settings
        )

    def __repr__(self) -> str:
        return f"FunctionSpec({self.name!r})"


class FunctionComponent(Component):
    """A component that calls a user's function (made by a :class:`FunctionSpec`)."""

    kind = "function"

    def __init__(
        self,
        spec: FunctionSpec,
        name: str | None = None,
        *,
        reads: Mapping[str, str | None] | None = None,
        writes: Mapping[str, str | None] | None = None,
        engine: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.spec = spec
        unknown = sorted(set(settings or {}) - set(spec.settings))
        if unknown:
            known = ", ".join(spec.settings) or "none"
            raise TypeError(f"function {spec.name} has no setting {unknown[0]!r} (has: {known})")
        if spec.is_cheap and engine is not None:
            raise ValueError(f"function {spec.name} is_cheap: it runs inline, on no engine")
        self.settings = {**spec.settings, **(settings or {})}
        chosen = None if spec.is_cheap else (engine or spec.engine)
        super().__init__(name or spec.fn.__name__, engine=chosen, reads=reads, writes=writes)

    def input_roles(self) -> dict[str, Role]:
        return {p.name: Role((p.type,), p.is_optional) for p in self.spec.ports}

    def output_roles(self) -> tuple[str, ...]:
        return tuple(self.spec.outputs)

    def output_types(self, input_types: Mapping[str, PortType]) -> dict[str, PortType]:
        return dict(self.spec.outputs)

    def expand(self, ctx: LoweringContext) -> None:
        spec = self.spec
        sources: dict[str, Source] = {}
        for port in spec.ports:
            source = ctx.read_optional(port.name) if port.is_optional else ctx.read(port.name)
            if source is not None:
                sources[port.name] = source
        items = sources.get(spec.items_port) if spec.items_port else None
        num_items = items.num_items if items is not None else None
        outputs = tuple(
            Port(role, port_type, num_items if port_type.is_list else None)
            for role, port_type in spec.outputs.items()
        )
        optional = {p.name for p in spec.ports if p.is_optional}
        params: dict[str, Any] = {"function": spec.ref}
        if self.settings:
            params["settings"] = dict(self.settings)
        node = ctx.add(
            Node(
                ctx.name(),
                Op.INLINE_FUNCTION if spec.is_cheap else Op.FUNCTION,
                inputs=tuple(s.port_for(r, is_optional=r in optional) for r, s in sources.items()),
                outputs=outputs,
                engine=ctx.engine,
                params=params,
                is_batchable=spec.batchable,
            )
        )
        for role, source in sources.items():
            ctx.connect(source, node.name, role)
        for output in outputs:
            ctx.write(output.name, Source(node.name, output.name, output.type, output.num_items))


@overload
def function(fn: Callable[..., Any], /) -> FunctionSpec: ...


@overload
def function(
    *,
    batchable: bool = False,
    is_cheap: bool = False,
    engine: str = DEFAULT_ENGINE,
    outputs: tuple[str, ...] = (DEFAULT_OUTPUT,),
) -> Callable[[Callable[..., Any]], FunctionSpec]: ...


def function(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    batchable: bool = False,
    is_cheap: bool = False,
    engine: str = DEFAULT_ENGINE,
    outputs: tuple[str, ...] = (DEFAULT_OUTPUT,),
) -> FunctionSpec | Callable[[Callable[..., Any]], FunctionSpec]:
    """Turn a Python function (sync or async) into a component factory.

    Ports come from the annotations (see :mod:`primflow.api.function`); an unsupported
    one is a ``TypeError`` naming the function and the parameter. ``batchable``: the
    function maps a list one item to one result (stages may split it, the engine may
    merge queries' calls). ``is_cheap``: run inline in the graph scheduler (sync, fast
    functions only). ``engine``: the function engine that runs it (default ``python``).

    Examples:
        >>> from primflow import build_template, function, lower, Query
        >>> from primflow.graph.printers import node_line
        >>> @function(is_cheap=True)
        ... def shout(question: str, *, marks: str = "!") -> str:
        ...     return question.upper() + marks
        >>> template = build_template(
        ...     "shouting", shout(marks="!!", writes={"result": "loud"}), outputs={"loud": "loud"}
        ... )
        >>> graph = lower(template, Query("what is hnsw?"))
        >>> print(node_line(graph, graph.node("shout")))
        shout = inline_function(question=input.question.value) -> result:text
            {function="__main__:shout", settings={"marks": "!!"}}
        >>> shout.fn("hi")
        'HI!'
        >>> @function
        ... def count(words: list[str]) -> int:
        ...     return len(words)
        Traceback (most recent call last):
        ...
        TypeError: function __main__:count: the return annotation int is no port type ...
    """

    def decorate(target: Callable[..., Any]) -> FunctionSpec:
        spec = FunctionSpec(
            target, batchable=batchable, is_cheap=is_cheap, engine=engine, outputs=outputs
        )
        _REGISTRY[spec.name] = spec
        return spec

    return decorate(fn) if fn is not None else decorate


def registered_function(name: str) -> FunctionSpec:
    """The function registered as ``module:qualname``; a KeyError lists the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise KeyError(
            f"no function {name!r} is registered (import the module that defines it "
            f"before loading the spec; registered: {known})"
        ) from None


def _type_hints(fn: Callable[..., Any], name: str) -> dict[str, Any]:
    if not callable(fn) or not hasattr(fn, "__qualname__"):
        raise TypeError(f"@function decorates a function, not {type(fn).__name__}")
    try:
        return typing.get_type_hints(fn)
    except Exception as exc:  # a name the annotations use is not importable
        raise TypeError(f"function {name}: cannot resolve its annotations: {exc}") from None


def _parameters(
    fn: Callable[..., Any], hints: Mapping[str, Any], name: str
) -> tuple[list[_Port], dict[str, Any]]:
    ports: list[_Port] = []
    settings: dict[str, Any] = {}
    for param in inspect.signature(fn).parameters.values():
        where = f"function {name}: parameter {param.name!r}"
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"{where}: *args and **kwargs cannot be ports or settings")
        if param.kind is param.KEYWORD_ONLY:
            if param.default is param.empty:
                raise TypeError(f"{where}: a setting (keyword-only) needs a default")
            settings[param.name] = param.default
            continue
        ports.append(_port(param, hints, where))
    return ports, settings


def _port(param: inspect.Parameter, hints: Mapping[str, Any], where: str) -> _Port:
    if param.name not in hints:
        raise TypeError(f"{where} has no annotation; annotate it with one of: {SUPPORTED}")
    annotation = hints[param.name]
    inner = _optional_inner(annotation)
    is_optional = inner is not None or (annotation is Any and param.default is None)
    if param.default is not param.empty and not (is_optional and param.default is None):
        raise TypeError(
            f"{where}: a port's only default is None (with an `X | None` annotation); "
            "make it keyword-only (after *) to be a setting"
        )
    port_type = port_type_of(inner if inner is not None else annotation)
    if port_type is None:
        raise TypeError(
            f"{where} is annotated {_show(annotation)}, which is no port type "
            f"(supported: {SUPPORTED}, or X | None)"
        )
    return _Port(param.name, port_type, is_optional)


def _outputs(hints: Mapping[str, Any], names: tuple[str, ...], name: str) -> dict[str, PortType]:
    if not names or any(not n.isidentifier() for n in names) or len(set(names)) != len(names):
        raise TypeError(f"function {name}: outputs must be distinct identifiers, got {names}")
    if "return" not in hints:
        raise TypeError(f"function {name} has no return annotation; annotate its result")
    returned = hints["return"]
    annotations = [returned]
    if len(names) > 1:
        annotations = list(typing.get_args(returned))
        if typing.get_origin(returned) is not tuple or len(annotations) != len(names):
            raise TypeError(
                f"function {name}: {len(names)} outputs need a tuple[...] of {len(names)} "
                f"types as the return annotation, got {_show(returned)}"
            )
    types_: dict[str, PortType] = {}
    for output, annotation in zip(names, annotations, strict=True):
        port_type = port_type_of(annotation)
        if port_type is None:
            raise TypeError(
                f"function {name}: the return annotation {_show(annotation)} is no port "
                f"type (supported: {SUPPORTED})"
            )
        types_[output] = port_type
    return types_


def _show(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("primflow.values.", "")
