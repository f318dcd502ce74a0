"""Hand-built scheduling scenarios for the simulator, beside the paper's apps.

``side_calls`` (the paper's Fig. 7 situation, made concrete). Each query asks one LLM
for search queries (``plan``), runs a slow web search on them, and has the LLM answer
from the results (``answer``); meanwhile three independent LLM side calls (say,
safety, language and topic tags of the question) become ready at the same moment as
``plan`` and join the answer at the end. The LLM is a single stream (one request at a
time, like llama.cpp on a small CPU box) and the search API takes 1 s.

Blind FIFO batching serves the side calls first, because they were ready first, so
the search starts only after all three: latency ~ sides + plan + search + answer.
Topology-aware batching (deepest primitive first) and critical-path batching
(longest remaining path first) run ``plan`` first, so the search overlaps the side
calls: latency ~ plan + max(search, sides) + answer. With the GPU preset that is
~4.2 s vs ~3.2 s for one query, and the gap persists under light Poisson load.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from primflow.engines.base import EngineKind
from primflow.graph import ops
from primflow.graph.ir import Graph, Node, Op, Port, PortType
from primflow.sim.workload import SimQuery, Workload

NUM_SIDE_CALLS = 3
NUM_SEARCH_QUERIES = 2


def side_calls_graph(num_side_calls: int = NUM_SIDE_CALLS) -> Graph:
    """The per-query e-graph of the ``side_calls`` scenario (see the module docstring)."""
    graph = Graph()
    graph.add_node(_input("question", PortType.TEXT))
    # Side calls first: a blind scheduler sees them before ``plan``.
    side_texts = [
        _llm_call(graph, f"side{i}", f"Tag {i} of the question: {{question}}", 24)
        for i in range(num_side_calls)
    ]
    plan_decode = _llm_call(
        graph,
        "plan",
        "Write 2 web search queries for: {question}",
        24,
        parser=str(ops.DecodeParser.JSON_LIST),
        num_items=NUM_SEARCH_QUERIES,
    )
    graph.add_node(
        Node(
            "search",
            Op.WEB_SEARCH,
            inputs=(Port(ops.QUERIES, PortType.TEXTS, NUM_SEARCH_QUERIES),),
            outputs=(Port(ops.HITS, PortType.HITS),),
            engine="web_search",
            params={"top_k": 4},
            is_batchable=True,
        )
    )
    graph.connect(plan_decode, ops.ITEMS, "search", ops.QUERIES)
    answer = _llm_call(
        graph, "answer", "Answer {question} from: {search_results}", 32, extra={"search_results"}
    )
    graph.connect("search", ops.HITS, "answer.prefill", "search_results")
    parts = [answer, *side_texts]
    graph.add_node(
        Node(
            "join",
            Op.AGGREGATE,
            inputs=tuple(Port(ops.part(i), PortType.TEXT) for i in range(len(parts))),
            outputs=(Port(ops.RESULT, PortType.TEXT),),
            params={"mode": str(ops.AggregateMode.ALL)},
        )
    )
    for i, src in enumerate(parts):
        graph.connect(src, ops.TEXT, "join", ops.part(i))
    graph.add_node(
        Node(
            "answer_out",
            Op.OUTPUT,
            inputs=(Port(ops.VALUE, PortType.TEXT),),
            params={"key": "answer"},
        )
    )
    graph.connect("join", ops.RESULT, "answer_out", ops.VALUE)
    return graph


def _input(key: str, port_type: PortType) -> Node:
    return Node(key, Op.INPUT, outputs=(Port(ops.VALUE, port_type),), params={"key": key})


def _llm_call(
    graph: Graph,
    name: str,
    template: str,
    max_tokens: int,
    *,
    parser: str | None = None,
    num_items: int = 0,
    extra: set[str] | None = None,
) -> str:
    """Add ``name.prefill -> name.decode`` fed by the question; returns the decode's name."""
    prompt_ports = [Port("question", PortType.TEXT)]
    prompt_ports += [Port(p, PortType.HITS) for p in sorted(extra or ())]
    graph.add_node(
        Node(
            f"{name}.prefill",
            Op.LLM_PREFILL,
            inputs=tuple(prompt_ports),
            outputs=(Port(ops.STATE, PortType.LLM_STATE),),
            engine="llm",
            params={"request": name, "template": template},
            is_batchable=True,
        )
    )
    outputs = [Port(ops.TEXT, PortType.TEXT)]
    params: dict[str, Any] = {"request": name, "max_tokens": max_tokens}
    if parser is not None:
        outputs.append(Port(ops.ITEMS, PortType.TEXTS, num_items))
        params |= {"parser": parser, "num_items": num_items}
    graph.add_node(
        Node(
            f"{name}.decode",
            Op.LLM_DECODE,
            inputs=(Port(ops.STATE, PortType.LLM_STATE),),
            outputs=tuple(outputs),
            engine="llm",
            params=params,
            is_batchable=True,
        )
    )
    graph.connect("question", ops.VALUE, f"{name}.prefill", "question")
    graph.connect(f"{name}.prefill", ops.STATE, f"{name}.decode", ops.STATE)
    return f"{name}.decode"


def side_calls_workload() -> Workload:
    graph = side_calls_graph()
    query = SimQuery(graph, {"question": "Which rivers flow through Vienna?"})

    def make_query(index: int, rng: np.random.Generator) -> SimQuery:
        del index, rng
        return query

    return Workload(
        name="side_calls",
        kinds={"llm": EngineKind.LLM, "web_search": EngineKind.WEB_SEARCH},
        make_query=make_query,
        description=(__doc__ or "").split("\n\n")[1].replace("\n", " "),
        info={"scenario": "side_calls"},
        # One request at a time on the LLM; a slow search API.
        profile_changes={
            "llm": {"max_batch_size": 1},
            "web_search": {"base_s": 1.0},
        },
        max_num_llm_calls=1,
    )


SCENARIOS: dict[str, Callable[[], Workload]] = {"side_calls": side_calls_workload}
