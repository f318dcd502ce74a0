"""Multi-hop RAG: retrieve, let a judge decide whether the passages suffice, and while
they do not, search again with the question expanded by the best passage so far (MDR's
query expansion) and add the best passages not yet held (at most ``MAX_HOPS``
retrievals), then answer.

The hop check and the answer read the *chain* (``READS``): the first retrieval's
passages, then each hop's best hit the chain does not hold (the bridge, then the fact),
not all the evidence held: SmolLM2-135M answered right more often from 3 passages than
from 4-6, and from one-fact chunks (``CHUNK_SIZE``) than from 300-character ones that
joined several facts (bench/bench_hops.py, docs/results/dynamic.md).

SmolLM2-135M's own reformulated query (``hop_query="model"``) rarely found the missing
fact; the expanded query does not depend on the model.

A dynamic graph: the hops are a ``Loop``. The first (``MIN_HOPS``) runs unchecked and
is lowered with the query; the judge then decides on the chain, and what it chooses
(the answer, or another hop) is lowered and optimized (incrementally, on the new round
only) when its constrained yes/no is known, and appended to the running query's graph.

The judge decides by calibrated log-probabilities on engines that can score (the
embedded one; remote engines keep the grammar): SmolLM2-135M's plain choice said "yes"
to every sample question. The content-free prior ("N/A" passages) is not neutral for
this prompt either (calibrated alone, mostly "no"), so ``HOP_BIAS`` sets the threshold,
fitted by bench/bench_judge.py on the sample questions (docs/results/dynamic.md).
"""

from __future__ import annotations

from collections.abc import Sequence

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
# Retrievals before the judge first decides: the first hop always runs (as in MDR,
# which always retrieves twice); SmolLM2-135M's judge said "yes" at once on 9 of the 11
# sample questions, and answers were right 6/11 against 4/11 (bench/bench_hops.py).
MIN_HOPS = 2
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
# How the answer step is asked: "brief" (the instruction, then the question, then the
# passages) or "passages-first" (the passages, then the question last, then "Answer:").
ANSWER_PROMPTS = {
    "brief": (
        "Answer the question using only the passages. Be brief.\n"
        "Question: {question}\nPassages:\n{evidence}\n\nAnswer:"
    ),
    "passages-first": (
        "Passages:\n{evidence}\n\nAnswer the question in a few words, using the passages.\n"
        "Question: {question}\nAnswer:"
    ),
}
DEFAULT_ANSWER_PROMPT = "brief"
ANSWER_PROMPT = ANSWER_PROMPTS[DEFAULT_ANSWER_PROMPT]
# What the answer step and the hop check read: "evidence" (every passage held, up to
# MAX_EVIDENCE, best first) or "chain" (the first retrieval's best CHAIN_START passages,
# then each hop's best hit the chain does not hold: the bridge, then the fact).
READS = ("evidence", "chain")
# The hop check may also read "newest": the chain's last passage only (the hop's find).
CHECK_READS = (*READS, "newest")
DEFAULT_ANSWER_READS = "chain"  # more answers right (bench/bench_hops.py)
DEFAULT_CHECK_READS = "chain"  # the shape HOP_BIAS was fitted on (first passages + fact)
CHAIN_START = 2  # the first retrieval's passages that start the chain
# Characters per chunk: about one sentence or paragraph of the sample documents, so a
# passage holds one fact (300 joined two or three, and the answer mixed them up).
CHUNK_SIZE = 120


@function(is_cheap=True)
def newest_passages(chain: list[Hit], *, num_passages: int = 1) -> list[Hit]:
    """The chain's last ``num_passages``: what the latest hop found."""
    return chain[-num_passages:]


def hop_check(reads: str = DEFAULT_CHECK_READS) -> Template:
    """The judge deciding whether the passages of ``reads`` (``CHECK_READS``) suffice."""
    judge = Judge(
        "enough",
        prompt=ENOUGH_PROMPT,
        reads={"question": "question", "evidence": reads},
        decision="decision",
        calibrate=True,
        bias=HOP_BIAS,
    )
    if reads != "newest":
        return build_template(
            "hop_check", judge, outputs={"decision": "decision"}, inputs={reads: PortType.HITS}
        )
    newest = newest_passages("newest", reads={"chain": "chain"}, writes={"result": "newest"})
    return build_template(
        "hop_check",
        newest >> judge,
        outputs={"decision": "decision"},
        inputs={"chain": PortType.HITS},
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
    _check_choice("hop_query", hop_query, HOP_QUERIES)
    if hop_query == "model":
        return reformulated() >> Aggregate("as_list", parts=["next_query"], result="next_queries")
    reads = {"question": "question", "evidence": "evidence"}
    return Flow.of(expanded_query("expand", reads=reads, writes={"result": "next_queries"}))


def _key(hit: Hit) -> tuple[str, int]:
    return hit.chunk.source, hit.chunk.chunk_id


@function(is_cheap=True)
def unseen_hits(
    evidence: list[Hit], hits: list[Hit], *, top_k: int = NEW_HITS_PER_HOP
) -> list[Hit]:
    """The best ``top_k`` of ``hits`` whose chunk the evidence does not hold: a query
    expanded by a passage retrieves that passage first, which adds nothing."""
    seen = {_key(h) for h in evidence}
    return [h for h in hits if _key(h) not in seen][:top_k]


@function(is_cheap=True)
def chain_start(hits: list[Hit], *, num_passages: int = CHAIN_START) -> list[Hit]:
    """The chain's first passages: the first retrieval's best ``num_passages``."""
    return hits[:num_passages]


@function(is_cheap=True)
def chain_extended(chain: list[Hit], hits: list[Hit], *, num_passages: int = 1) -> list[Hit]:
    """``chain`` followed by the best ``num_passages`` of the hop's ``hits`` it does not
    hold: the passages in the order they were found (bridge, then fact)."""
    held = {_key(h) for h in chain}
    return [*chain, *[h for h in hits if _key(h) not in held][:num_passages]]


def searched(is_skipping_seen: bool) -> Flow:
    """Search the next queries; writes ``new_hits`` (only unseen ones if skipping)."""
    if not is_skipping_seen:
        return Flow.of(VectorSearch(vectors="next_vectors", index="index", hits="new_hits"))
    wide = MAX_EVIDENCE + NEW_HITS_PER_HOP  # enough to hold NEW_HITS_PER_HOP unseen ones
    reads = {"evidence": "evidence", "hits": "found_hits"}
    return VectorSearch(
        vectors="next_vectors", index="index", hits="found_hits", top_k=wide
    ) >> unseen_hits("unseen", reads=reads, writes={"result": "new_hits"})


def chained(is_skipping_seen: bool) -> Flow:
    """Extend the chain by the hop's best hit it does not hold (of all the hop found)."""
    reads = {"chain": "chain", "hits": "found_hits" if is_skipping_seen else "new_hits"}
    return Flow.of(chain_extended("extend_chain", reads=reads, writes={"result": "chain_next"}))


def hop(
    hop_query: str = DEFAULT_HOP_QUERY, is_skipping_seen: bool = False, is_chaining: bool = False
) -> Template:
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
    outputs = {"evidence": "evidence_next"}
    inputs = {"evidence": PortType.HITS, "index": PortType.INDEX}
    if is_chaining:
        flow = flow >> chained(is_skipping_seen)
        outputs["chain"] = "chain_next"
        inputs["chain"] = PortType.HITS
    return build_template("hop", flow, outputs=outputs, inputs=inputs)


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def build(
    max_hops: int = MAX_HOPS,
    hop_query: str = DEFAULT_HOP_QUERY,
    is_skipping_seen: bool = IS_SKIPPING_SEEN,
    answer_reads: str = DEFAULT_ANSWER_READS,
    check_reads: str = DEFAULT_CHECK_READS,
    answer_prompt: str = DEFAULT_ANSWER_PROMPT,
    num_chain_start: int = CHAIN_START,
    min_hops: int = MIN_HOPS,
) -> Template:
    """The app's template; ``answer_reads``/``check_reads`` name what the answer step and
    the hop check read (``READS``), ``answer_prompt`` a key of ``ANSWER_PROMPTS``;
    ``min_hops`` retrievals run before the judge first decides (``Loop``'s
    ``min_rounds``)."""
    _check_choice("answer_reads", answer_reads, READS)
    _check_choice("check_reads", check_reads, CHECK_READS)
    _check_choice("answer_prompt", answer_prompt, list(ANSWER_PROMPTS))
    is_chaining = answer_reads == "chain" or check_reads != "evidence"
    state = {"evidence": "hits", "index": "index"}
    results = {"evidence": "evidence"}
    if is_chaining:
        state["chain"] = "chain"
        results["chain"] = "final_chain"
    hops = Loop(
        "hops",
        check=hop_check(check_reads),
        steps={"no": hop(hop_query, is_skipping_seen, is_chaining)},
        state=state,
        results=results,
        stop_on=("yes",),
        max_rounds=max_hops - 1,
        min_rounds=min_hops - 1,
    )
    answer_evidence = "final_chain" if answer_reads == "chain" else "evidence"
    answer = Generate(
        "answer",
        prompt=ANSWER_PROMPTS[answer_prompt],
        reads={"question": "question", "evidence": answer_evidence},
        text="answer",
    )
    flow = document_search()
    if is_chaining:
        reads, writes = {"hits": "hits"}, {"result": "chain"}
        flow = flow >> chain_start(num_passages=num_chain_start, reads=reads, writes=writes)
    outputs = {"answer": "answer", "hits": answer_evidence}
    if answer_evidence != "evidence":
        outputs["evidence"] = "evidence"
    return build_template("multi_hop_rag", flow >> hops >> answer, outputs=outputs)


def sample_documents() -> list[Document]:
    return sample_documents_in("multihop")


APP = App(
    name="multi_hop_rag",
    description="multi-hop RAG: retrieve, judge the evidence, expand the query and retrieve again",
    build=build,
    default_config=QueryConfig(top_k=2, chunk_size=CHUNK_SIZE),
    sample_question="Which city does the lead engineer of Project Kestrel work in?",
    sample_documents=sample_documents,
    sample_decisions=("yes",),
    questions_file="multihop_questions.jsonl",
)
