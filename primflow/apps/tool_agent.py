"""An agent that picks its next tool: retrieve from the documents, search the web,
calculate, or answer. Each step is chosen by a judge's constrained choice among the
tool names and lowered (and optimized, on its own) only once it is chosen.

A ``Loop`` with one step per tool: the check asks which tool comes next, the step that
choice names runs, and "answer" ends the loop (at most ``MAX_STEPS`` tool calls).
The calculator never executes model text: the model's expression follows an arithmetic
grammar and is evaluated by an AST-restricted evaluator (``primflow.apps.tools``).
"""

from __future__ import annotations

from primflow.api.components import (
    Aggregate,
    Embed,
    Generate,
    Judge,
    Loop,
    VectorSearch,
    WebSearch,
)
from primflow.api.config import QueryConfig
from primflow.api.template import Template, build_template
from primflow.apps.app import App
from primflow.apps.retrieval import document_search
from primflow.apps.samples import sample_documents
from primflow.apps.tools import ARITHMETIC_GRAMMAR, calculate
from primflow.graph.ir import PortType

MAX_STEPS = 3
MAX_EVIDENCE = 6
TOOLS = ("retrieve", "web_search", "calculate")
STOP = "answer"

CHOOSE_PROMPT = (
    "Question: {question}\nNotes:\n{notes}\nEvidence:\n{evidence}\n\n"
    "Choose the next tool: retrieve (search the documents), web_search (search the "
    "web), calculate (do arithmetic), answer (the evidence and notes suffice).\nTool:"
)
QUERY_PROMPT = (
    "Question: {question}\nEvidence:\n{evidence}\n"
    "Write one short search query for what is still missing.\nQuery:"
)
EXPRESSION_PROMPT = (
    "Question: {question}\nNotes:\n{notes}\nEvidence:\n{evidence}\n"
    "Write the arithmetic expression whose value the question needs.\nExpression:"
)
ANSWER_PROMPT = (
    "Answer the question using the evidence and the notes. Be brief.\n"
    "Question: {question}\nEvidence:\n{evidence}\nNotes:\n{notes}\n\nAnswer:"
)
STATE = {"evidence": PortType.HITS, "notes": PortType.TEXTS, "index": PortType.INDEX}


def _query_writer() -> Generate:
    return Generate(
        "write_query",
        prompt=QUERY_PROMPT,
        reads={"question": "question", "evidence": "evidence"},
        text="query",
        max_tokens=24,
        stop=["\n"],
    )


def _merge() -> Aggregate:
    return Aggregate(
        "merge", parts=["evidence", "new_hits"], result="evidence_next", mode="top_k",
        top_k=MAX_EVIDENCE,
    )  # fmt: skip


def choose() -> Template:
    judge = Judge(
        "choose",
        prompt=CHOOSE_PROMPT,
        reads={"question": "question", "notes": "notes", "evidence": "evidence"},
        decision="decision",
        choices=(*TOOLS, STOP),
    )
    return build_template("choose", judge, outputs={"decision": "decision"}, inputs=STATE)


def retrieve() -> Template:
    flow = (
        _query_writer()
        >> Aggregate("as_list", parts=["query"], result="queries")
        >> Embed("embed_query", items="queries", vectors="query_vectors")
        >> VectorSearch(vectors="query_vectors", index="index", hits="new_hits")
        >> _merge()
    )
    return build_template("retrieve", flow, outputs={"evidence": "evidence_next"}, inputs=STATE)


def web_search() -> Template:
    flow = (
        _query_writer()
        >> Aggregate("as_list", parts=["query"], result="queries")
        >> WebSearch(queries="queries", hits="new_hits")
        >> _merge()
    )
    return build_template("web_search", flow, outputs={"evidence": "evidence_next"}, inputs=STATE)


def calculator() -> Template:
    flow = Generate(
        "write_expression",
        prompt=EXPRESSION_PROMPT,
        reads={"question": "question", "notes": "notes", "evidence": "evidence"},
        text="expression",
        max_tokens=48,
        grammar=ARITHMETIC_GRAMMAR,
    ) >> calculate(reads={"notes": "notes", "expression": "expression"},
                   writes={"result": "notes_next"})  # fmt: skip
    return build_template("calculate", flow, outputs={"notes": "notes_next"}, inputs=STATE)


def build(max_steps: int = MAX_STEPS) -> Template:
    agent = Loop(
        "agent",
        check=choose(),
        steps={"retrieve": retrieve(), "web_search": web_search(), "calculate": calculator()},
        state={"evidence": "hits", "notes": "question_list", "index": "index"},
        results={"evidence": "evidence", "notes": "notes"},
        stop_on=(STOP,),
        max_rounds=max_steps,
    )
    flow = (
        document_search()
        >> agent
        >> Generate(
            "answer",
            prompt=ANSWER_PROMPT,
            reads={"question": "question", "evidence": "evidence", "notes": "notes"},
            text="answer",
        )
    )
    return build_template("tool_agent", flow, outputs={"answer": "answer", "hits": "evidence"})


APP = App(
    name="tool_agent",
    description="an agent choosing among retrieve, web search, calculate and answer",
    build=build,
    default_config=QueryConfig(top_k=2, web_top_k=2),
    sample_question="How many days of paid leave do two full-time employees get in total?",
    sample_documents=sample_documents,
    sample_decisions=("retrieve", "calculate", "answer"),
    questions_file="agent_questions.jsonl",
)
