"""Small hand-built e-graphs and fake-engine setups for the runtime tests.

Engine names: ``embedder``, ``vectors``, ``web``, ``llm``. ``Wire`` is (node, port).
"""

from __future__ import annotations

import asyncio
from typing import Any

from primflow.engines.profile import LatencyProfile
from primflow.graph import ops
from primflow.graph.ir import Graph, Node, Op, Port, PortType, Provenance
from primflow.runtime import Runtime
from primflow.testing.fake_engine import FakeEngine
from primflow.testing.fake_llm import FakeLLM
from primflow.testing.fakes import FakeEmbedder, FakeVectorIndex, FakeWebSearch

Wire = tuple[str, str]


class Builder:
    def __init__(self) -> None:
        self.graph = Graph()

    def _add(self, node: Node, wires: dict[str, Wire]) -> str:
        self.graph.add_node(node)
        for port, (src, src_port) in wires.items():
            self.graph.connect(src, src_port, node.name, port)
        return node.name

    def input(self, name: str, type_: PortType = PortType.TEXT) -> Wire:
        node = Node(name, Op.INPUT, outputs=(Port(ops.VALUE, type_),), params={"key": name})
        self._add(node, {})
        return (name, ops.VALUE)

    def output(self, name: str, src: Wire, *, is_optional: bool = False) -> str:
        port = Port(ops.VALUE, PortType.ANY, is_optional=is_optional)
        return self._add(
            Node(name, Op.OUTPUT, inputs=(port,), params={"key": name}), {ops.VALUE: src}
        )

    def embed(
        self,
        name: str,
        items: Wire,
        type_: PortType = PortType.TEXTS,
        provenance: Provenance | None = None,
    ) -> Wire:
        node = Node(
            name,
            Op.EMBED,
            inputs=(Port(ops.ITEMS, type_),),
            outputs=(Port(ops.VECTORS, PortType.VECTORS),),
            engine="embedder",
            is_batchable=True,
            provenance=provenance or Provenance(),
        )
        self._add(node, {ops.ITEMS: items})
        return (name, ops.VECTORS)

    def web(self, name: str, queries: Wire) -> Wire:
        node = Node(
            name,
            Op.WEB_SEARCH,
            inputs=(Port(ops.QUERIES, PortType.TEXTS),),
            outputs=(Port(ops.HITS, PortType.HITS),),
            engine="web",
            params={"top_k": 2},
        )
        self._add(node, {ops.QUERIES: queries})
        return (name, ops.HITS)

    def prefill(
        self,
        name: str,
        template: str,
        wires: dict[str, Wire],
        request: str = "answer",
        optional: tuple[str, ...] = (),
    ) -> Wire:
        ports = tuple(
            Port(p, PortType.ANY, is_optional=p in optional) for p in ops.placeholders(template)
        )
        node = Node(
            name,
            Op.LLM_PREFILL,
            inputs=ports,
            outputs=(Port(ops.STATE, PortType.LLM_STATE),),
            engine="llm",
            params={"request": request, "template": template},
        )
        self._add(node, wires)
        return (name, ops.STATE)

    def decode(self, name: str, state: Wire, request: str = "answer", max_tokens: int = 8) -> Wire:
        node = Node(
            name,
            Op.LLM_DECODE,
            inputs=(Port(ops.STATE, PortType.LLM_STATE),),
            outputs=(Port(ops.TEXT, PortType.TEXT),),
            engine="llm",
            params={"request": request, "max_tokens": max_tokens},
        )
        self._add(node, {ops.STATE: state})
        return (name, ops.TEXT)

    def partial_decode(self, name: str, state: Wire, index: int, num_items: int) -> str:
        node = Node(
            name,
            Op.LLM_PARTIAL_DECODE,
            inputs=(Port(ops.STATE, PortType.LLM_STATE),),
            outputs=(Port(ops.ITEMS, PortType.TEXTS, 1), Port(ops.STATE, PortType.LLM_STATE)),
            engine="llm",
            params={"request": "answer", "index": index, "num_items": num_items, "max_tokens": 8},
        )
        return self._add(node, {ops.STATE: state})

    def condition(self, name: str, decision: Wire, value: Wire, predicate: str = "yes") -> str:
        node = Node(
            name,
            Op.CONDITION,
            inputs=(Port(ops.DECISION, PortType.TEXT), Port(ops.VALUE, PortType.ANY)),
            outputs=(Port(ops.IF_TRUE, PortType.ANY), Port(ops.IF_FALSE, PortType.ANY)),
            params={"predicate": predicate},
        )
        return self._add(node, {ops.DECISION: decision, ops.VALUE: value})

    def aggregate(self, name: str, parts: list[Wire], mode: str, **params: Any) -> Wire:
        node = Node(
            name,
            Op.AGGREGATE,
            inputs=tuple(Port(ops.part(i), PortType.ANY) for i in range(len(parts))),
            outputs=(Port(ops.RESULT, PortType.ANY),),
            params={"mode": mode, **params},
        )
        self._add(node, {ops.part(i): wire for i, wire in enumerate(parts)})
        return (name, ops.RESULT)


def chain_graph() -> Graph:
    """question -> embed -> output."""
    b = Builder()
    vectors = b.embed("embed", b.input("texts", PortType.TEXTS))
    b.output("vectors", vectors)
    return b.graph


def answer_graph() -> Graph:
    """question -> prefill -> decode -> answer."""
    b = Builder()
    state = b.prefill("prefill", "Q: {question}\nA:", {"question": b.input("question")})
    b.output("answer", b.decode("decode", state))
    return b.graph


def fakes(
    *, latency_scale: float = 0.0, profiles: dict[str, LatencyProfile] | None = None
) -> dict[str, FakeEngine]:
    """One fake per engine name; zero latency unless scaled."""
    profiles = profiles or {}
    kinds: dict[str, type[FakeEngine]] = {
        "embedder": FakeEmbedder,
        "vectors": FakeVectorIndex,
        "web": FakeWebSearch,
        "llm": FakeLLM,
    }
    return {
        name: cls(name, profiles.get(name), latency_scale=latency_scale)
        for name, cls in kinds.items()
    }


async def settle() -> None:
    """Let cancellation callbacks run (each hop is one loop iteration)."""
    for _ in range(10):
        await asyncio.sleep(0)


def assert_clean(runtime: Runtime, engines: dict[str, FakeEngine]) -> None:
    """Nothing of any ended query is left: no run, request, task or engine state."""
    assert runtime.num_running_queries == 0
    assert runtime.num_open_requests == 0
    for worker in runtime.workers.values():
        assert worker.scheduler.num_queued == 0, worker.name
        assert worker.scheduler.num_running == 0, worker.name
    for engine in engines.values():
        assert engine.num_tracked_tasks == 0, engine.name
        assert engine.num_queries_with_state == 0, engine.name
