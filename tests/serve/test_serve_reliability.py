"""Reliability through the real HTTP server (fake engines held and broken over HTTP):
admission (429), deadlines (504), client disconnects, engine failures. Each test ends
with nothing of its queries left in the runtime, the server or any engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from conftest import MAX_QUEUED
from reliability import aborted_by_some_engine, body, control, is_idle, state, wait_for
from serve_process import ServerProcess

QUERY = "/v1/apps/naive_rag/query"


@pytest.fixture
async def client(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as c:
        try:
            yield c
        finally:
            await control(c, "all", "release")
            for engine in ("llm", "judge", "embedder", "vector_index", "web_search"):
                await control(c, engine, "recover")
            await wait_for(c, is_idle)


async def test_cap_admits_exactly_n_and_rejects_m_at_once(client: httpx.AsyncClient) -> None:
    num_extra = 3
    await control(client, "all", "hold")
    tasks = [
        asyncio.ensure_future(client.post(QUERY, json=body(f"question {i}")))
        for i in range(MAX_QUEUED + num_extra)
    ]
    # The refused answer at once, while the admitted ones are held in the engines.
    rejected: list[httpx.Response] = []
    pending = set(tasks)
    while len(rejected) < num_extra:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        rejected.extend(task.result() for task in done)
    assert all(r.status_code == 429 for r in rejected), [r.text for r in rejected]
    assert all(r.headers["retry-after"] == "1" for r in rejected)
    assert "max 4" in rejected[0].json()["error"]["message"]
    held = await state(client)
    assert held["server"]["num_active_queries"] == MAX_QUEUED
    await control(client, "all", "release")
    accepted = await asyncio.gather(*pending)
    assert [r.status_code for r in accepted] == [200] * MAX_QUEUED
    metrics = (await client.get("/metrics")).text
    assert 'primflow_queries_total{app="naive_rag",status="rejected"}' in metrics


async def test_expired_deadline_answers_504_naming_query_and_unfinished(
    client: httpx.AsyncClient,
) -> None:
    await control(client, "all", "hold")
    response = await client.post(QUERY, json=body(deadline_s=0.3))
    assert response.status_code == 504
    error = response.json()["error"]
    assert error["type"] == "deadline_exceeded"
    assert error["query_id"] in error["message"] and error["unfinished"]
    # Still held: the query's requests are gone from every engine anyway.
    current = await wait_for(client, is_idle)
    assert aborted_by_some_engine(current, error["query_id"])


async def test_disconnect_mid_stream_cancels_only_that_query(client: httpx.AsyncClient) -> None:
    await control(client, "all", "hold")
    sibling = asyncio.ensure_future(client.post(QUERY, json=body("the sibling question")))
    async with client.stream("POST", QUERY, json=body(stream=True)) as response:
        assert response.status_code == 200
        lines = response.aiter_lines()
        assert await anext(lines) == "event: query"
        first = await anext(lines)
        query_id = first.split('"query_id":"')[1].split('"')[0]
        await wait_for(client, lambda s: s["server"]["num_active_queries"] == 2)
    # The client is gone: its query is cancelled and aborted; the sibling still runs.
    current = await wait_for(
        client,
        lambda s: s["server"]["num_active_queries"] == 1 and aborted_by_some_engine(s, query_id),
    )
    assert current["runtime"]["num_running_queries"] == 1
    await control(client, "all", "release")
    answered = await sibling
    assert answered.status_code == 200 and answered.json()["answer"]
    await wait_for(client, is_idle)
    metrics = (await client.get("/metrics")).text
    assert 'primflow_queries_total{app="naive_rag",status="cancelled"}' in metrics


async def test_engine_failure_fails_only_its_queries(client: httpx.AsyncClient) -> None:
    await control(client, "all", "hold")
    doomed = asyncio.ensure_future(client.post(QUERY, json=body("boom-marker question")))
    fine = asyncio.ensure_future(client.post(QUERY, json=body("a fine question")))
    await wait_for(client, lambda s: s["server"]["num_active_queries"] == 2)
    await control(client, "llm", "fail", marker="boom-marker", reason="the LLM crashed")
    await control(client, "all", "release")
    failed, answered = await asyncio.gather(doomed, fine)
    assert failed.status_code == 500
    error = failed.json()["error"]
    assert error["type"] == "engine_failure" and error["engine"] == "llm"
    assert error["primitive"] and error["primitive"] in error["message"]
    assert "the LLM crashed" in error["message"]
    assert answered.status_code == 200
    ready = await client.get("/ready")
    assert ready.status_code == 503 and ready.json()["unhealthy_engines"] == ["llm"]
    again = await client.post(QUERY, json=body("another question"))
    assert again.status_code == 200  # the server keeps serving
    await control(client, "llm", "recover")
    assert (await client.get("/ready")).status_code == 200


async def test_a_higher_priority_query_is_served_first(client: httpx.AsyncClient) -> None:
    await control(client, "all", "hold")
    first = asyncio.ensure_future(client.post(QUERY, json=body("the first question")))
    await wait_for(client, lambda s: s["runtime"]["num_queued"]["embedder"] == 0 and _held(s))
    low = asyncio.ensure_future(client.post(QUERY, json=body("a low question", priority=-1)))
    plain = asyncio.ensure_future(client.post(QUERY, json=body("a plain question")))
    await wait_for(client, lambda s: s["runtime"]["num_running_queries"] == 3)
    chat = {
        "model": "naive_rag",
        "messages": [{"role": "user", "content": "an urgent question"}],
        "documents": body()["documents"],
        "service_tier": "priority",
    }
    urgent = asyncio.ensure_future(client.post("/v1/chat/completions", json=chat))
    await wait_for(client, lambda s: s["runtime"]["num_running_queries"] == 4)
    await control(client, "all", "release")
    answers = await asyncio.gather(first, low, plain, urgent)
    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
    first_id, low_id, plain_id = (a.json()["query_id"] for a in answers[:3])
    urgent_id = answers[3].json()["id"].removeprefix("chatcmpl-")
    served = (await state(client))["engines"]["embedder"]["served_queries"]
    order = [q for q in served if q in {first_id, low_id, plain_id, urgent_id}]
    # The first was already on the engine; then by priority, not by arrival.
    assert order == [first_id, urgent_id, plain_id, low_id]


def _held(current: dict[str, object]) -> bool:
    engines = current["engines"]
    assert isinstance(engines, dict)
    return bool(engines["embedder"]["num_held_requests"])
