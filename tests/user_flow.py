"""A user's own workflow in a folder of its own, as a new user would write it: a YAML
spec with a custom ``kind: function`` step (a keyword filter between search and
rerank), the Python module defining that step, and two small documents.

The module is imported by the commands' ``--import`` (from its file), so it is named
uniquely here (``userflow_steps``) and, imported once, registers its function for the
whole test session.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MODULE = "userflow_steps"
SPEC_NAME = "my_keyword_rag"
QUESTION = "How many days of paid annual leave do full-time employees get?"

STEPS = '''"""A keyword filter: keep the hits sharing a word with the question."""

import re

import primflow
from primflow.values import Hit


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 3}


@primflow.function
def keep_matching(question: str, hits: list[Hit], *, min_shared_words: int = 1) -> list[Hit]:
    wanted = _words(question)
    kept = [h for h in hits if len(wanted & _words(h.chunk.text)) >= min_shared_words]
    return kept or list(hits)
'''

SPEC = f"""# search wide, keep the passages sharing the question's words, rerank, answer
name: {SPEC_NAME}
steps:
  - {{name: chunk, kind: chunk, writes: {{chunks: chunks}}}}
  - {{name: embed_docs, kind: embed, reads: {{items: chunks}}, writes: {{vectors: doc_vectors}}}}
  - name: ingest
    kind: ingest
    reads: {{chunks: chunks, vectors: doc_vectors}}
    writes: {{index: index}}
  - {{name: embed_question, kind: embed, reads: {{items: question_list}}, writes: {{vectors: qv}}}}
  - name: search
    kind: search
    top_k: 4
    reads: {{vectors: qv, index: index}}
    writes: {{hits: hits}}
  - name: keep
    kind: function
    function: "{MODULE}:keep_matching"
    settings: {{min_shared_words: 1}}
    reads: {{question: question, hits: hits}}
    writes: {{result: kept}}
  - name: rerank
    kind: rerank
    top_k: 2
    reads: {{query: question, hits: kept}}
    writes: {{reranked: best}}
  - name: synthesize
    kind: synthesize
    reads: {{question: question, context: best}}
    writes: {{answer: answer}}
outputs: {{answer: answer, hits: best, kept: kept}}
"""

DOCS = {
    "leave.md": "# Leave\n\nFull-time employees get 25 days of paid annual leave each "
    "year. Part-time employees get leave in proportion to their hours. Unused leave "
    "carries over for one year.",
    "office.md": "# Office\n\nThe office opens at 8 am and closes at 6 pm. Visitors sign "
    "in at the front desk. The cafeteria serves lunch from noon.",
}


@dataclass(frozen=True)
class UserFlow:
    folder: Path
    spec: Path
    steps: Path
    docs: Path
    questions: Path


def write_user_flow(folder: Path) -> UserFlow:
    folder.mkdir(parents=True, exist_ok=True)
    steps = folder / f"{MODULE}.py"
    steps.write_text(STEPS, encoding="utf-8")
    spec = folder / "flow.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    docs = folder / "docs"
    docs.mkdir(exist_ok=True)
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    questions = folder / "questions.txt"
    questions.write_text(QUESTION + "\n", encoding="utf-8")
    return UserFlow(folder, spec, steps, docs, questions)
