"""Helpers for the reliability tests: test controls, bounded polling, "nothing left"."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

DOCS = [{"text": "Employees get 28 days of paid annual leave each year.", "source": "leave.md"}]
MAX_POLLS = 400  # x 25 ms: bounded loops, never a timed assertion


def body(question: str = "How many days of leave?", **fields: object) -> dict[str, Any]:
    return {"question": question, "documents": DOCS, **fields}


async def control(client: httpx.AsyncClient, engine: str, action: str, **payload: str) -> None:
    response = await client.post(f"/_testing/engines/{engine}/{action}", json=payload or None)
    response.raise_for_status()


async def state(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/_testing/state")
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


async def wait_for(client: httpx.AsyncClient, predicate: Any) -> dict[str, Any]:
    """Poll the server state until ``predicate(state)`` holds (bounded)."""
    for _ in range(MAX_POLLS):
        current = await state(client)
        if predicate(current):
            return current
        await asyncio.sleep(0.025)
    raise AssertionError(f"the server never reached the expected state: {current}")


def is_idle(current: dict[str, Any]) -> bool:
    runtime, server = current["runtime"], current["server"]
    engines = current["engines"].values()
    return (
        runtime["num_running_queries"] == 0
        and runtime["num_open_requests"] == 0
        and not any(runtime["num_queued"].values())
        and server["num_active_queries"] == 0
        and server["num_running_tasks"] == 0
        and server["num_tracked_queries"] == 0
        and all(
            e["num_held_requests"] == 0
            and e["num_tracked_tasks"] == 0
            and e["num_queries_with_state"] == 0
            and e["num_llm_calls"] == 0
            and e["num_collections"] == 0
            for e in engines
        )
    )


def aborted_by_some_engine(current: dict[str, Any], query_id: str) -> bool:
    return any(query_id in e["aborted"] for e in current["engines"].values())
