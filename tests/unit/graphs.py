"""Hand-built p-graphs for pass, lint and printer tests, following primflow.graph.ops.

``GraphBuilder`` adds one primitive per call and wires its inputs from ``(node, port)``
pairs; the ``*_graph`` functions build the workflows the passes are designed for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from primflow.graph import ops
from primflow.graph.ir import Graph, Node, Op, Port, PortType

Src = tuple[str, str]

RAG_TEMPLATE = "Answer from the context.\nQuestion: {question}\nContext:\n{context}\nAnswer:"
EXPAND_TEMPLATE = "Write {n} search queries for: {question}"


class GraphBuilder:
    def __init__(self, graph: Graph | None = None) -> None:
        self.graph = graph if graph is not None else Graph()

    def _add(self, node: Node, wires: Mapping[str, Src]) -> str:
        self.graph.add_node(node)
        for port, (src, src_port) in wires.items():
            self.graph.connect(src, src_port, node.name, port)
        return node.name

    def input(self, name: str, type_: PortType, num_items: int | None = None) -> str:
        port = Port(ops.VALUE, type_, num_items)
        return self._add(Node(name, Op.INPUT, outputs=(port,), params={"key": name}), {})

    def output(self, name: str, src: Src) -> str:
        node = Node(name, Op.OUTPUT, inputs=(Port(ops.VALUE, PortType.ANY),), params={"key": name})
        return self._add(node, {ops.VALUE: src})

    def embed(self, name: str, items: Src, n: int, type_: PortType = PortType.CHUNKS) -> str:
        node = Node(
            name,
            Op.EMBED,
            inputs=(Port(ops.ITEMS, type_, n),),
            outputs=(Port(ops.VECTORS, PortType.VECTORS, n),),
            engine="embedder",
            is_batchable=True,
            is_splittable=True,
        )
        return self._add(node, {ops.ITEMS: items})

    def ingest(self, name: str, chunks: Src, vectors: Src, n: int) -> str:
        node = Node(
            name,
            Op.VECTOR_INGEST,
            inputs=(Port(ops.CHUNKS, PortType.CHUNKS, n), Port(ops.VECTORS, PortType.VECTORS, n)),
            outputs=(Port(ops.INDEX, PortType.INDEX),),
            engine="vectors",
            params={"collection": "docs"},
            is_batchable=True,
        )
        return self._add(node, {ops.CHUNKS: chunks, ops.VECTORS: vectors})

    def search(self, name: str, vectors: Src, index: Src, n: int, top_k: int = 3) -> str:
        node = Node(
            name,
            Op.VECTOR_SEARCH,
            inputs=(Port(ops.VECTORS, PortType.VECTORS, n), Port(ops.INDEX, PortType.INDEX)),
            outputs=(Port(ops.HITS, PortType.HITS, n * top_k),),
            engine="vectors",
            params={"top_k": top_k},
            is_batchable=True,
            is_splittable=True,
        )
        return self._add(node, {ops.VECTORS: vectors, ops.INDEX: index})

    def rerank(self, name: str, query: Src, hits: Src, n: int, top_k: int = 2) -> str:
        node = Node(
            name,
            Op.RERANK,
            inputs=(Port(ops.QUERY, PortType.TEXT), Port(ops.HITS, PortType.HITS, n)),
            outputs=(Port(ops.HITS, PortType.HITS, min(n, top_k)),),
            engine="reranker",
            params={"top_k": top_k},
            is_batchable=True,
        )
        return self._add(node, {ops.QUERY: query, ops.HITS: hits})

    def prefill(
        self, name: str, template: str, wires: Mapping[str, Src], request: str = "answer"
    ) -> str:
        ports = tuple(Port(p, PortType.ANY) for p in ops.placeholders(template))
        node = Node(
            name,
            Op.LLM_PREFILL,
            inputs=ports,
            outputs=(Port(ops.STATE, PortType.LLM_STATE),),
            engine="llm",
            params={"request": request, "template": template, "system": "Be brief."},
        )
        return self._add(node, wires)

    def decode(
        self, name: str, state: Src, request: str = "answer", num_items: int | None = None
    ) -> str:
        outputs = [Port(ops.TEXT, PortType.TEXT)]
        params: dict[str, Any] = {"request": request, "max_tokens": 64}
        if num_items is not None:
            outputs.append(Port(ops.ITEMS, PortType.TEXTS, num_items))
            params.update(parser=ops.DecodeParser.JSON_LIST, num_items=num_items)
        node = Node(
            name,
            Op.LLM_DECODE,
            inputs=(Port(ops.STATE, PortType.LLM_STATE),),
            outputs=tuple(outputs),
            engine="llm",
            params=params,
            is_splittable=num_items is not None,
        )
        return self._add(node, {ops.STATE: state})


def indexing_graph(num_chunks: int) -> Graph:
    """chunks -> embed -> ingest -> output (the index handle)."""
    b = GraphBuilder()
    b.input("chunks", PortType.CHUNKS, num_chunks)
    b.embed("embed_docs", ("chunks", ops.VALUE), num_chunks)
    b.ingest("ingest", ("chunks", ops.VALUE), ("embed_docs", ops.VECTORS), num_chunks)
    b.output("index", ("ingest", ops.INDEX))
    return b.graph


def naive_rag_graph(num_chunks: int, *, with_order: bool = True) -> Graph:
    """Index the chunks, search with the question, answer; ORDER edges as lowering adds."""
    b = GraphBuilder()
    b.input("chunks", PortType.CHUNKS, num_chunks)
    b.input("question", PortType.TEXT)
    b.embed("embed_docs", ("chunks", ops.VALUE), num_chunks)
    b.ingest("ingest", ("chunks", ops.VALUE), ("embed_docs", ops.VECTORS), num_chunks)
    b.embed("embed_query", ("question", ops.VALUE), 1, PortType.TEXT)
    b.search("search", ("embed_query", ops.VECTORS), ("ingest", ops.INDEX), 1)
    b.prefill(
        "answer_prefill",
        RAG_TEMPLATE,
        {"question": ("question", ops.VALUE), "context": ("search", ops.HITS)},
    )
    b.decode("answer_decode", ("answer_prefill", ops.STATE))
    b.output("answer", ("answer_decode", ops.TEXT))
    if with_order:
        b.graph.order("ingest", "embed_query")
        b.graph.order("search", "answer_prefill")
    return b.graph


def advanced_rag_graph(num_chunks: int, num_queries: int = 3) -> Graph:
    """Indexing, query expansion into ``num_queries`` queries, per-query search and rerank,
    then answer (the paper's advanced RAG)."""
    b = GraphBuilder()
    b.input("chunks", PortType.CHUNKS, num_chunks)
    b.input("question", PortType.TEXT)
    b.embed("embed_docs", ("chunks", ops.VALUE), num_chunks)
    b.ingest("ingest", ("chunks", ops.VALUE), ("embed_docs", ops.VECTORS), num_chunks)
    b.prefill(
        "expand_prefill",
        "Write search queries for: {question}",
        {"question": ("question", ops.VALUE)},
        request="expand",
    )
    b.decode("expand_decode", ("expand_prefill", ops.STATE), "expand", num_queries)
    b.embed("embed_queries", ("expand_decode", ops.ITEMS), num_queries, PortType.TEXTS)
    b.search("search", ("embed_queries", ops.VECTORS), ("ingest", ops.INDEX), num_queries)
    b.rerank("rerank", ("question", ops.VALUE), ("search", ops.HITS), num_queries * 3)
    b.prefill(
        "answer_prefill",
        RAG_TEMPLATE,
        {"question": ("question", ops.VALUE), "context": ("rerank", ops.HITS)},
    )
    b.decode("answer_decode", ("answer_prefill", ops.STATE))
    b.output("answer", ("answer_decode", ops.TEXT))
    for src, dst in [("ingest", "expand_prefill"), ("rerank", "answer_prefill")]:
        b.graph.order(src, dst)
    return b.graph
