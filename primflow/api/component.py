"""Components, the user-facing building blocks of a workflow, and ``>>`` composition.

A component reads and writes named *channels* (like state keys): each of its input
roles is bound to the channel it reads, each output role to the channel it writes.
Bindings are explicit; a role left unbound reads or writes the channel of the same
name. :mod:`primflow.api.template` checks them when the template is built.

``a >> b`` orders ``b`` after ``a`` and returns a :class:`Flow`, so ``a >> b >> c`` is a
chain. A list fans out or in: ``a >> [b, c] >> d``. Composition never mutates a
component; a component object is one node of the template however often it appears.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Union

from primflow.graph.ir import PortType

if TYPE_CHECKING:
    from primflow.api.expansion import LoweringContext


@dataclass(frozen=True, slots=True)
class Role:
    """An input role: which channel types it accepts and whether it may be absent."""

    types: tuple[PortType, ...]
    is_optional: bool = False

    def describe(self) -> str:
        return " or ".join(str(t) for t in self.types)


class Component(ABC):
    """A step of a workflow; lowering expands it into primitives (:meth:`expand`).

    ``batchable``: its inputs are independent items, so its primitives can be batched
    and split into stages. ``splittable``: its output splits into semantic pieces that
    downstream work can start on. ``engine`` names the engine group that runs it.

    A component of your own declares its roles (:meth:`input_roles`,
    :meth:`output_roles`, :meth:`output_types`) and adds its primitives in
    :meth:`expand`; docs/guide/extending.md walks through a full one (HyDE).

    Examples:
        >>> from primflow import Component, Op, Query, build_template, lower
        >>> from primflow.api import Role, Source
        >>> from primflow.graph import ops
        >>> from primflow.graph.ir import Node, Port, PortType
        >>> class EmbedQuestion(Component):
        ...     kind = "embed_question"
        ...     default_engine = "embedder"
        ...     def __init__(self, name=None, *, vectors="vectors"):
        ...         reads = {"questions": "question_list"}
        ...         super().__init__(name, reads=reads, writes={"vectors": vectors})
        ...     def input_roles(self):
        ...         return {"questions": Role((PortType.TEXTS,))}
        ...     def output_roles(self):
        ...         return ("vectors",)
        ...     def output_types(self, input_types):
        ...         return {"vectors": PortType.VECTORS}
        ...     def expand(self, ctx):
        ...         questions = ctx.read("questions")
        ...         vectors = Port(ops.VECTORS, PortType.VECTORS, questions.num_items)
        ...         items = questions.port_for(ops.ITEMS)
        ...         node = Node(ctx.name(), Op.EMBED, (items,), (vectors,), engine=ctx.engine)
        ...         ctx.add(node)
        ...         ctx.connect(questions, node.name, ops.ITEMS)
        ...         written = Source(node.name, ops.VECTORS, PortType.VECTORS, questions.num_items)
        ...         ctx.write("vectors", written)
        >>> template = build_template("mine", EmbedQuestion(), outputs={"vectors": "vectors"})
        >>> [(n.name, str(n.op)) for n in lower(template, Query("What is HNSW?"))]
        [('input.question_list', 'input'), ('embed_question', 'embed'),
         ('output.vectors', 'output')]
    """

    kind: ClassVar[str] = ""
    default_engine: ClassVar[str | None] = None
    batchable: ClassVar[bool] = False
    splittable: ClassVar[bool] = False

    def __init__(
        self,
        name: str | None,
        *,
        engine: str | None = None,
        reads: Mapping[str, str | None] | None = None,
        writes: Mapping[str, str | None] | None = None,
    ) -> None:
        self.name = name or self.kind
        if not self.name.isidentifier():
            raise ValueError(f"component name {self.name!r} must be an identifier")
        self.engine = engine if engine is not None else self.default_engine
        given_reads = dict(reads or {})
        given_writes = dict(writes or {})
        for role in given_reads.keys() - self.input_roles().keys():
            raise ValueError(f"component {self.name!r} ({self.kind}) has no input {role!r}")
        for role in given_writes.keys() - set(self.output_roles()):
            raise ValueError(f"component {self.name!r} ({self.kind}) has no output {role!r}")
        self.reads: dict[str, str | None] = {
            role: given_reads.get(role, role) for role in self.input_roles()
        }
        self.writes: dict[str, str | None] = {
            role: given_writes.get(role, role) for role in self.output_roles()
        }

    # -- what subclasses declare --------------------------------------------------------
    def input_roles(self) -> dict[str, Role]:
        return {}

    def output_roles(self) -> tuple[str, ...]:
        return ()

    @abstractmethod
    def output_types(self, input_types: Mapping[str, PortType]) -> dict[str, PortType]:
        """Types of the output roles given the types of the channels read."""

    def engine_names(self) -> tuple[str, ...]:
        """Every engine group this component's primitives run on, so an engine stack
        can build them all: its ``engine``; a component whose primitives also run on
        other engines (an LLM call whose text is then embedded) lists those too."""
        return () if self.engine is None else (self.engine,)

    def conditional_outputs(self) -> frozenset[str]:
        """Output roles that exist only on some runs (a CONDITION's branches)."""
        return frozenset()

    def validate(self) -> None:  # noqa: B027 - most components have nothing to check
        """Check the component's own settings; raise ValueError saying what is wrong."""

    @abstractmethod
    def expand(self, ctx: LoweringContext) -> None:
        """Add this component's primitives for one query to ``ctx``'s graph."""

    # -- composition --------------------------------------------------------------------
    def __rshift__(self, other: Composable) -> Flow:
        return Flow.of(self) >> other

    def __rrshift__(self, other: Composable) -> Flow:
        return Flow.of(other) >> self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


Composable = Union[Component, "Flow", list["Composable"], tuple["Composable", ...]]


class Flow:
    """A DAG of components under construction: ``edges`` run from ``sources`` to ``sinks``."""

    def __init__(
        self,
        components: Iterable[Component],
        edges: Iterable[tuple[Component, Component]],
        sources: Iterable[Component],
        sinks: Iterable[Component],
    ) -> None:
        self.components = _unique(components)
        self.edges = _unique_edges(edges)
        self.sources = _unique(sources)
        self.sinks = _unique(sinks)

    @staticmethod
    def of(item: Composable) -> Flow:
        if isinstance(item, Flow):
            return item
        if isinstance(item, Component):
            return Flow([item], [], [item], [item])
        if isinstance(item, list | tuple):
            flows = [Flow.of(x) for x in item]
            if not flows:
                raise ValueError("cannot compose an empty list of components")
            return Flow(
                [c for f in flows for c in f.components],
                [e for f in flows for e in f.edges],
                [c for f in flows for c in f.sources],
                [c for f in flows for c in f.sinks],
            )
        raise TypeError(f"cannot compose {type(item).__name__} with >> (use components)")

    def __rshift__(self, other: Composable) -> Flow:
        right = Flow.of(other)
        links = [(a, b) for a in self.sinks for b in right.sources]
        return Flow(
            self.components + right.components,
            self.edges + right.edges + links,
            self.sources,
            right.sinks,
        )

    def __rrshift__(self, other: Composable) -> Flow:
        return Flow.of(other) >> self

    def __repr__(self) -> str:
        return f"Flow({', '.join(c.name for c in self.components)})"


def _unique(items: Iterable[Component]) -> list[Component]:
    seen: dict[int, Component] = {}
    for item in items:
        seen.setdefault(id(item), item)
    return list(seen.values())


def _unique_edges(
    edges: Iterable[tuple[Component, Component]],
) -> list[tuple[Component, Component]]:
    seen: dict[tuple[int, int], tuple[Component, Component]] = {}
    for a, b in edges:
        seen.setdefault((id(a), id(b)), (a, b))
    return list(seen.values())
