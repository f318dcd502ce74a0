"""Answers as response bodies: the native query response and its parts."""

from __future__ import annotations

from typing import Any

from primflow.serve.schemas import Passage, Primitive, QueryResponse
from primflow.session.session import Answer


def query_response(answer: Answer) -> QueryResponse:
    return QueryResponse(
        query_id=answer.query_id,
        app=answer.app,
        answer=answer.text,
        latency_s=round(answer.latency_s, 6),
        lower_s=round(answer.lower_s, 6),
        optimize_s=round(answer.optimize_s, 6),
        passages=[
            Passage(source=h.chunk.source, chunk_id=h.chunk.chunk_id, score=float(h.score))
            for h in answer.passages
        ],
        critical_path=list(answer.timing.critical_path),
        primitives=[
            Primitive(
                node=p.node,
                op=p.op,
                engine=p.engine,
                start_s=round(p.start_s, 6),
                queue_s=round(p.queue_s, 6),
                service_s=round(p.service_s, 6),
                batch_size=p.batch_size,
                is_critical=p.is_critical,
            )
            for p in answer.timing.primitives
        ],
    )


def query_json(answer: Answer) -> dict[str, Any]:
    return query_response(answer).model_dump()
