"""A custom application in Python: rerank-then-answer RAG over your own documents.

Run it on the embedded engines (real small models) from the repository root::

    .venv/bin/python docs/examples/custom_app.py --docs samples/docs \
        --question "How long is the warranty on the Tidepool Marine model?"

``--fake`` runs the same graph on the model-free fake engines in a second;
``--spec samples/specs/naive_rag.yaml`` runs a YAML/JSON spec instead of ``build()``.
"""

from __future__ import annotations

import argparse
import asyncio

from primflow import (
    ChunkDocuments,
    Embed,
    Generate,
    Ingest,
    Query,
    QueryConfig,
    QueryResult,
    Rerank,
    Runtime,
    Template,
    VectorSearch,
    build_template,
    load_documents,
    load_spec,
    lower_query,
    optimize,
)
from primflow.session.factories import embedded_factory, fake_factory
from primflow.session.stack import ENGINE_KINDS, EngineStack


def build() -> Template:
    """Index the documents, fetch passages for the question, rerank them, answer."""
    flow = (
        ChunkDocuments(chunks="chunks")
        >> Embed("embed_docs", items="chunks", vectors="doc_vectors")
        >> Ingest(chunks="chunks", vectors="doc_vectors", index="index")
        >> Embed("embed_question", items="question_list", vectors="question_vectors")
        >> VectorSearch(vectors="question_vectors", index="index", hits="hits", top_k=6)
        >> Rerank(query="question", hits="hits", reranked="passages", top_k=2)
        >> Generate(
            "answer",
            prompt="Answer briefly from the passages.\nQuestion: {question}\n"
            "Passages:\n{passages}\nAnswer:",
            reads={"question": "question", "passages": "passages"},
            text="answer",
        )
    )
    return build_template("rerank_rag", flow, outputs={"answer": "answer", "hits": "passages"})


async def ask(
    template: Template, question: str, docs: str, *, is_fake: bool = False
) -> QueryResult:
    """Lower one query, optimize its graph and run it on a fresh engine stack."""
    query = Query(question, load_documents(docs), QueryConfig(chunk_size=350, max_tokens=48))
    lowered = lower_query(template, query)
    graph, _report = optimize(lowered.graph)
    # One engine per engine name the components use (embedder, vector_index, ...).
    names = sorted({c.engine for c in template.components if c.engine is not None})
    factory = fake_factory(latency_scale=0.0) if is_fake else embedded_factory()
    kinds = {name: ENGINE_KINDS[name] for name in names}
    async with (
        EngineStack(kinds, factory) as stack,
        Runtime(stack.borrowed(), profiles=stack.profiles) as runtime,
    ):
        return await runtime.run(graph, lowered.inputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", default="samples/docs")
    parser.add_argument("--question", default="How many days of paid annual leave do we get?")
    parser.add_argument("--fake", action="store_true", help="fake engines (no models)")
    parser.add_argument("--spec", help="a YAML/JSON spec file to run instead of build()")
    args = parser.parse_args()
    template = load_spec(args.spec) if args.spec else build()
    result = asyncio.run(ask(template, args.question, args.docs, is_fake=args.fake))
    print(result.outputs["answer"])
    for hit in result.outputs["hits"]:
        print(f"  [{hit.score:.2f}] {hit.chunk.source}")


if __name__ == "__main__":
    main()
