"""Corrective RAG: retrieve from the documents, let a judge grade the passages, and
when they fail fall back to a web search; the answer reads whichever evidence is left.

The judge's grade is a constrained yes/no; the web search and everything only it
needs run on the "no" branch alone (dropped, never dispatched, when the passages pass).

The grade keeps the grammar-constrained choice, with the hop check's wording ("answered
from these passages alone, or is a fact missing?"): bench/bench_judge.py measured it
against the calibrated choice, with and without a fitted bias, on the 20 questions of
samples/corrective_questions.jsonl: 13 of 20 right on SmolLM2-135M, where no
calibrated setting did better than 11 (docs/results/dynamic.md). The wording before
("do the passages contain the answer?") said "yes" to every question, so the web
search never ran.
"""

from __future__ import annotations

from primflow.api.components import (
    Aggregate,
    Condition,
    Generate,
    Judge,
    WebSearch,
)
from primflow.api.config import QueryConfig
from primflow.api.template import Template, build_template
from primflow.apps.app import App
from primflow.apps.retrieval import document_search
from primflow.apps.samples import sample_documents

GRADE_PROMPT = (  # the grammar's best wording in bench/bench_judge.py
    "Passages:\n{hits}\n\nQuestion: {question}\n"
    "Can the question be answered from these passages alone, or is a fact missing? "
    "Reply yes if it can be answered, no if a fact is missing.\nReply:"
)
ANSWER_PROMPT = (
    "Answer the question using only the evidence. Be brief.\n"
    "Question: {question}\nEvidence:\n{evidence}\n\nAnswer:"
)


def build() -> Template:
    flow = (
        document_search()
        >> Judge(
            "grade",
            prompt=GRADE_PROMPT,
            reads={"hits": "hits", "question": "question"},
            decision="grade",
        )
        >> [
            Condition("keep", decision="grade", value="hits", if_true="doc_evidence"),
            Condition("fall_back", decision="grade", value="question_list", if_false="web_queries"),
        ]
        >> WebSearch(queries="web_queries", hits="web_hits")
        >> Aggregate(
            "evidence", parts=["doc_evidence", "web_hits"], result="evidence", mode="first"
        )
        >> Generate(
            "answer",
            prompt=ANSWER_PROMPT,
            reads={"question": "question", "evidence": "evidence"},
            text="answer",
        )
    )
    return build_template("corrective_rag", flow, outputs={"answer": "answer", "hits": "evidence"})


APP = App(
    name="corrective_rag",
    description="corrective RAG: grade the retrieved passages, fall back to a web search",
    build=build,
    default_config=QueryConfig(top_k=3, web_top_k=3),
    sample_question="Who won the Nobel Prize in Physics in 1921, and for what?",
    sample_documents=sample_documents,
    questions_file="corrective_questions.jsonl",
)
