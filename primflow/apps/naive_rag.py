"""Document QA with naive RAG (paper §7): docs -> chunk -> embed -> ingest; question ->
embed -> search top-k -> synthesis (tree mode by default, as in the paper)."""

from __future__ import annotations

from primflow.api.components import Synthesize
from primflow.api.config import QueryConfig, SynthesisMode
from primflow.api.template import Template, build_template
from primflow.apps.app import App
from primflow.apps.retrieval import document_search
from primflow.apps.samples import sample_documents


def build() -> Template:
    # A module chain, as frameworks write it; pruning finds the real dependencies.
    flow = document_search() >> Synthesize(question="question", context="hits", answer="answer")
    return build_template("naive_rag", flow, outputs={"answer": "answer", "hits": "hits"})


APP = App(
    name="naive_rag",
    description="document QA: chunk, embed, index, search top-k, tree synthesis",
    build=build,
    default_config=QueryConfig(top_k=3, synthesis_mode=SynthesisMode.TREE),
    sample_question="How many days of paid annual leave do full-time employees get?",
    sample_documents=sample_documents,
)
