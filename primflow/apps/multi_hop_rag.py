"""Multi-hop RAG: retrieve, let a judge decide whether the evidence suffices, and while
it does not, search again with the question expanded by the best passage so far (MDR's
query expansion) and add the best passages not yet held (at most ``MAX_HOPS``
retrievals), then answer from all the evidence.

SmolLM2-135M's own reformulated query (``hop_query="model"``) rarely found the missing
fact; the expanded query does not depend on the model (docs/results/dynamic.md).

A dynamic graph: the hops after the first are a ``Loop`` whose rounds are lowered and
optimized (incrementally, on the new round only) when the judge's constrained yes/no
is known, and appended to the running query's graph.

The judge decides by calibrated log-probabilities on engines that can score (the
embedded one; remote engines keep the grammar): SmolLM2-135M's plain choice said "yes"
to every sample question. The content-free prior ("N/A" passages) is not neutral for
this prompt either (calibrated alone, mostly "no"), so ``HOP_BIAS`` sets the threshold,
fitted by bench/bench_judge.py on the sample questions (docs/results/dynamic.md).
"""

from __future__ import annotations

from primflow.api.component import Flow
from primflow.api.components import (
    Aggregate,
    Embed,
    Generate,
    Judge,
    Loop,
    VectorSearch,
)
from primflow.api.config import QueryConfig
from primflow.api.documents import Document
from primflow.api.function import function
from primflow.api.template import Template, build_template
from primflow.apps.app import App
from primflow.apps.retrieval import document_search
from primflow.apps.samples import sample_documents_in
from primflow.graph.ir import PortType
from primflow.values import Hit

MAX_HOPS = 3  # retrievals in all: the first, then at most two more
MAX_EVIDENCE = 6  # passages kept across hops (merged, best first)

ENOUGH_PROMPT = (
    "Passages:\n{evidence}\n\nQuestion: {question}\n"
    "Can the question be answered from these passages alone, or is a fact missing? "
    "Reply yes if it can be answered, no if a fact is missing.\nReply:"
)
HOP_BIAS = {"yes": 0.62}  # added to "yes"'s calibrated score (bench/bench_judge.py)
REFORMULATE_PROMPT = (
    "Question: {question}\nPassages:\n{evidence}\n\n"
    "The passages do not answer the question yet. Write one short search query for the "
    "missing fact, naming what the passages tell you.\nQuery:"
)
# How a hop writes its search query: the model's reformulation ("model") or the question
# followed by the best passage so far (MDR's query expansion, Xiong et al. 2021).
HOP_QUERIES = ("model", "question+passage")
DEFAULT_HOP_QUERY = "question+passage"  # found more missing facts (bench/bench_hops.py)
IS_SKIPPING_SEEN = True  # whether a hop keeps only hits the evidence does not hold
NEW_HITS_PER_HOP = 2  # passages a hop adds that the evidence does not hold yet
ANSWER_PROMPT = (
    "Answer the question using only the passages. Be brief.\n"
    "Question: {question}\nPassages:\n{evidence}\n\nAnswer:"
)


def hop_check() -> Template:
    judge = Judge(
        "enough",
        prompt=ENOUGH_PROMPT,
        reads={"question": "question", "evidence": "evidence"},
        decision="decision",
        calibrate=True,
        bias=HOP_BIAS,
    )
    return build_template(
        "hop_check", judge, outputs={"decision": "decision"}, inputs={"evidence": PortType.HITS}
    )


@function(is_cheap=True)
def expanded_query(question: str, evidence: list[Hit], *, num_passages: int = 1) -> list[str]:
    """The next hop's search query: ``question`` followed by the best ``num_passages``
    passages of the evidence (MDR's query expansion with 1, pseudo-relevance feedback
    with all), one text to embed."""
    passages = [h.chunk.text.strip() for h in evidence[:num_passages]]
    return ["\n".join([question.strip(), *passages])]


def reformulated() -> Generate:
    return Generate(
        "reformulate",
        prompt=REFORMULATE_PROMPT,
        reads={"question": "question", "evidence": "evidence"},
        text="next_query",
        max_tokens=24,
        stop=["\n"],
    )


def next_queries(hop_query: str) -> Flow:
    """The flow that writes ``next_queries`` (a list of one text) for ``hop_query``."""
    if hop_query == "model":
        return reformulated() >> Aggregate("as_list", parts=["next_query"], result="next_queries")
    if hop_query == "question+passage":
        reads = {"question": "question", "evidence": "evidence"}
        return Flow.of(expanded_query("expand", reads=reads, writes={"result": "next_queries"}))
    raise ValueError(f"hop_query must be one of {', '.join(HOP_QUERIES)}, got {hop_query!r}")


@function(is_cheap=True)
def unseen_hits(
    evidence: list[Hit], hits: list[Hit], *, top_k: int = NEW_HITS_PER_HOP
) -> list[Hit]:
    """The best ``top_k`` of ``hits`` whose chunk the evidence does not hold: a query
    expanded by a passage retrieves that passage first, which adds nothing."""
    seen = {(h.chunk.source, h.chunk.chunk_id) for h in evidence}
    return [h for h in hits if (h.chunk.source, h.chunk.chunk_id) not in seen][:top_k]


def searched(is_skipping_seen: bool) -> Flow:
    """Search the next queries; writes ``new_hits`` (only unseen ones if skipping)."""
    if not is_skipping_seen:
        return Flow.of(VectorSearch(vectors="next_vectors", index="index", hits="new_hits"))
    wide = MAX_EVIDENCE + NEW_HITS_PER_HOP  # enough to hold NEW_HITS_PER_HOP unseen ones
    reads = {"evidence": "evidence", "hits": "found_hits"}
    return VectorSearch(
        vectors="next_vectors", index="index", hits="found_hits", top_k=wide
    ) >> unseen_hits("unseen", reads=reads, writes={"result": "new_hits"})


def hop(hop_query: str = DEFAULT_HOP_QUERY, is_skipping_seen: bool = False) -> Template:
    flow = (
        next_queries(hop_query)
        >> Embed("embed_query", items="next_queries", vectors="next_vectors")
        >> searched(is_skipping_seen)
        >> Aggregate(
            "merge",
            parts=["evidence", "new_hits"],
            result="evidence_next",
            mode="top_k",
            top_k=MAX_EVIDENCE,
        )
    )
    return build_template(
        "hop",
        flow,
        outputs={"evidence": "evidence_next"},
        inputs={"evidence": PortType.HITS, "index": PortType.INDEX},
    )


def build(
    max_hops: int = MAX_HOPS,
    hop_query: str = DEFAULT_HOP_QUERY,
    is_skipping_seen: bool = IS_SKIPPING_SEEN,
) -> Template:
    hops = Loop(
        "hops",
        check=hop_check(),
        steps={"no": hop(hop_query, is_skipping_seen)},
        state={"evidence": "hits", "index": "index"},
        results={"evidence": "evidence"},
        stop_on=("yes",),
        max_rounds=max_hops - 1,
    )
    flow = (
        document_search()
        >> hops
        >> Generate(
            "answer",
            prompt=ANSWER_PROMPT,
            reads={"question": "question", "evidence": "evidence"},
            text="answer",
        )
    )
    return build_template("multi_hop_rag", flow, outputs={"answer": "answer", "hits": "evidence"})


def sample_documents() -> list[Document]:
    return sample_documents_in("multihop")


APP = App(
    name="multi_hop_rag",
    description="multi-hop RAG: retrieve, judge the evidence, expand the query and retrieve again",
    build=build,
    default_config=QueryConfig(top_k=2),
    sample_question="Which city does the lead engineer of Project Kestrel work in?",
    sample_documents=sample_documents,
    sample_decisions=("no", "yes"),
    questions_file="multihop_questions.jsonl",
)
