"""Asking a question so that it can be explained: the measured run, then its reference.

The measured run goes first, so the reference cannot warm caches for it; the
reference (the same question with the ``sequential`` scheme, every primitive alone)
runs without the measured run's cached prompts and gives the uncontended bound.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from primflow.api.documents import Document
from primflow.apps import App
from primflow.collections import Collection
from primflow.explain.model import Explanation
from primflow.explain.recorder import ExplainRecorder
from primflow.session.session import Session


async def explain_question(
    session: Session,
    recorder: ExplainRecorder,
    app: App | str,
    question: str,
    documents: Sequence[Document] = (),
    *,
    config_changes: Mapping[str, Any] | None = None,
    collection: Collection | None = None,
    with_bound: bool = True,
) -> Explanation:
    """Run ``question`` on ``session`` (whose hooks include ``recorder.hooks``), with
    its reference unless ``with_bound`` is False, and explain it."""
    answer = await session.ask(
        app, question, documents, config_changes=config_changes, collection=collection
    )
    if with_bound:
        session.forget_prefixes(answer.query_id)
        reference = await session.ask(
            app,
            question,
            documents,
            scheme="sequential",
            config_changes=config_changes,
            collection=collection,
        )
        answer.set_reference(reference)
    recorder.record(answer)
    explanation = recorder.explanation(answer.query_id)
    assert explanation is not None  # just recorded
    return explanation
