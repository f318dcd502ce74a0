"""The Ray backend on a real local 3-node cluster, with the model-free fake engines.

The fakes run inside the actors (the same classes as in-process), so these tests pin
the backend's semantics: placement by resources, results identical to the in-process
runtime, streaming, balancing of instances, an actor killed mid-batch, and
cancellation and deadlines reaching the actor.
"""

from __future__ import annotations

import asyncio

import pytest
import ray
from ray_stacks import attribute, instances, local_stack, ray_stack

from primflow.apps import get_app
from primflow.graph.ir import Op
from primflow.runtime.errors import QueryError, QueryFailed, QueryTimeout
from primflow.session import Session

pytestmark = pytest.mark.ray

# A bounded wait for something the cluster does by itself (a restart, an abort).
MAX_POLLS = 600
POLL_S = 0.05


async def _eventually(check: object, what: str) -> None:
    for _ in range(MAX_POLLS):
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(POLL_S)
    raise AssertionError(f"timed out waiting for {what}")


async def _ask(session: Session, app_name: str, **kwargs: object):  # type: ignore[no-untyped-def]
    app = get_app(app_name)
    query = app.sample_query()
    changes = dict(app.sample_config_changes)
    return await session.ask(
        app_name, query.question, list(query.documents), config_changes=changes, **kwargs
    )  # type: ignore[arg-type]


@pytest.mark.parametrize("app_name", ["naive_rag", "advanced_rag"])
async def test_an_app_runs_on_engines_on_different_nodes(
    cluster: dict[str, str], app_name: str
) -> None:
    placed = {
        "llm": {"num_cpus": 0.5, "resources": {"llm_node": 1}},
        "embedder": {"num_cpus": 0.5, "label_selector": {"role": "embed"}},
        "vector_index": {"num_cpus": 0, "resources": {"head_node": 1}},
    }
    stack = ray_stack([app_name], placed)
    texts: list[str] = []
    async with stack, Session(stack) as session:
        on_ray = await _ask(session, app_name, on_text=texts.append)
    async with local_stack([app_name]) as local, Session(local) as session:
        expected = await _ask(session, app_name)
    on_nodes = {"llm": "llm_node", "embedder": "embed_node", "vector_index": "head_node"}
    for name, node in on_nodes.items():
        assert instances(stack, name)[0].description.node_id == cluster[node]
    assert on_ray.text == expected.text
    assert "".join(texts).strip() == expected.text.strip()
    assert [(h.chunk.source, h.chunk.chunk_id) for h in on_ray.passages] == [
        (h.chunk.source, h.chunk.chunk_id) for h in expected.passages
    ]
    if app_name == "advanced_rag":  # its query expansion streams items as they close
        assert any(node.op is Op.LLM_PARTIAL_DECODE for node in on_ray.graph.nodes)


async def test_two_instances_of_one_engine_share_the_load(cluster: dict[str, str]) -> None:
    stack = ray_stack(
        ["naive_rag"],
        {"embedder": {"num_instances": 2, "num_cpus": 0.5, "resources": {"embed_node": 1}}},
    )
    async with stack, Session(stack) as session:
        answers = await asyncio.gather(*(_ask(session, "naive_rag") for _ in range(8)))
        embedders = instances(stack, "embedder")
        num_batches = [len(attribute(engine, "batches")) for engine in embedders]
    assert len({answer.text for answer in answers}) == 1
    assert all(n > 0 for n in num_batches), num_batches
    assert sum(num_batches) >= 16  # each query embeds its documents and its question


async def test_a_killed_actor_fails_only_its_queries_and_is_restarted(
    cluster: dict[str, str],
) -> None:
    stack = ray_stack(
        ["naive_rag"],
        {
            "embedder": {
                "num_instances": 2,
                "num_cpus": 0.5,
                "resources": {"embed_node": 1},
                "max_restarts": 1,
            }
        },
    )
    async with stack, Session(stack) as session:
        doomed, healthy = instances(stack, "embedder")
        ray.get(doomed.actor.engine_call.remote("block", "embed_docs"), timeout=30)
        queries = [asyncio.ensure_future(_ask(session, "naive_rag")) for _ in range(6)]
        await _eventually(lambda: doomed.health().num_running > 0, "a batch on the doomed actor")
        await _eventually(
            lambda: attribute(doomed, "num_queries_with_state") > 0, "the batch to be held"
        )
        ray.kill(doomed.actor, no_restart=False)
        results = await asyncio.gather(*queries, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        assert failed, "the queries on the killed actor must fail"
        assert all(isinstance(r, QueryFailed) for r in failed), failed
        assert all("embedder#0" in str(r) and "died" in str(r) for r in failed), failed
        assert len(failed) < len(results), "the queries on the other instance finish"
        await _eventually(lambda: doomed.is_up, "Ray to restart the actor")
        again = await asyncio.gather(*(_ask(session, "naive_rag") for _ in range(6)))
        assert len({answer.text for answer in again}) == 1
        assert len(attribute(doomed, "batches")) > 0  # the restarted engine serves again
        assert attribute(healthy, "num_queries_with_state") == 0


async def test_cancellation_and_deadlines_reach_the_actor(cluster: dict[str, str]) -> None:
    stack = ray_stack(["naive_rag"], {"llm": {"num_cpus": 0.5, "resources": {"llm_node": 1}}})
    async with stack, Session(stack) as session:
        [llm] = instances(stack, "llm")
        decode = "synthesize.leaf0.decode"
        ray.get(llm.actor.engine_call.remote("block", decode), timeout=30)
        for how in ("cancel", "deadline"):
            query_id = stack.new_query_id(f"naive_rag-{how}")
            deadline_s = 30.0 if how == "cancel" else 1.0
            task = asyncio.ensure_future(
                _ask(session, "naive_rag", query_id=query_id, deadline_s=deadline_s)
            )
            held = [query_id, decode]
            await _eventually(
                lambda held=held: any(
                    held in map(list, batch) for batch in attribute(llm, "batch_keys")
                ),
                "the decode on the actor",
            )
            if how == "cancel":
                task.cancel()
            with pytest.raises((asyncio.CancelledError, QueryError)) as raised:
                await task
            if how == "deadline":
                assert isinstance(raised.value, QueryTimeout)
            await _eventually(
                lambda query_id=query_id: query_id in attribute(llm, "aborted"),
                f"the {how} to abort on the actor",
            )
            assert attribute(llm, "num_queries_with_state") == 0
            assert attribute(llm, "num_tracked_tasks") == 0


async def test_partial_decode_items_stream_back_from_the_actor(cluster: dict[str, str]) -> None:
    """advanced_rag's query expansion decodes three items in one LLM call; with the
    last one held in the actor, the first one's downstream embed already runs."""
    stack = ray_stack(["advanced_rag"], {"llm": {"num_cpus": 0.5, "resources": {"llm_node": 1}}})
    async with stack, Session(stack) as session:
        [llm] = instances(stack, "llm")
        ray.get(llm.actor.engine_call.remote("block", "expand.decode.p2"), timeout=30)
        query_id = stack.new_query_id("advanced_rag-stream")
        task = asyncio.ensure_future(_ask(session, "advanced_rag", query_id=query_id))
        embedder = stack.engines["embedder"]
        await _eventually(
            lambda: any(
                (query_id, "embed_queries.p0") in batch
                for batch in embedder.batch_keys  # type: ignore[attr-defined]
            ),
            "the first expansion's embed while the last item is still decoding",
        )
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await _eventually(
            lambda: query_id in attribute(llm, "aborted"), "the cancel to abort on the actor"
        )
