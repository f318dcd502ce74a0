"""@function components at run time: the function engine (threads, processes, merged
batchable calls), the inline cheap path, failures, the baselines, a batchable function
run in stages, and an engine under a name of the user's own (all on the fakes)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from primflow import (
    Embed,
    EngineKind,
    EngineRequest,
    EngineStack,
    Op,
    Query,
    QueryFailed,
    Runtime,
    Session,
    build_template,
    function,
    lower_query,
)
from primflow.apps import App
from primflow.engines.base import Engine, EngineError
from primflow.engines.function import FunctionEngine
from primflow.engines.placement import CoreBudget
from primflow.engines.profile import LatencyProfile
from primflow.graph.ir import PortType
from primflow.passes import decompose_stages
from primflow.session import fake_factory
from primflow.session.stack import StackError
from primflow.sim.engines import build_engines
from primflow.testing.examples.hashing_embedder import HashingEmbedder, words
from primflow.testing.examples.keyword_rag import (
    HASHING_KEYWORD_RAG,
    KEYWORD_RAG,
    build_keyword_rag,
    keyword_filter,
)
from primflow.testing.fakes import FakeEmbedder

DOCS = [
    "Full-time employees get 25 days of paid annual leave per year.",
    "The office cafeteria serves lunch from noon, with a vegetarian dish.",
    "Expense reports are filed within 30 days, receipts attached.",
]
fakes = fake_factory(latency_scale=0.0)


def _request(query_id: str, fn: Any, inputs: dict[str, Any], **params: Any) -> EngineRequest:
    return EngineRequest(
        query_id, fn.fn.__name__, Op.FUNCTION, inputs, {"function": fn.ref, **params}
    )


@function(batchable=True)
def double(texts: list[str], *, sep: str = "") -> list[str]:
    return [t + sep + t for t in texts]


@function(batchable=True)
def drops_one(texts: list[str]) -> list[str]:
    return texts[1:]


@function
def fails(texts: list[str]) -> list[str]:
    raise ValueError("no texts today")


def test_the_engine_merges_calls_of_a_batchable_function_and_splits_them_back() -> None:
    async def main() -> tuple[list[Any], int]:
        engine = FunctionEngine()
        batch = [
            _request("q0", double, {"texts": ["a"]}),
            _request("q1", double, {"texts": ["b", "c"]}),
            _request("q2", double, {"texts": ["d"]}, settings={"sep": "-"}),  # other settings
        ]
        try:
            return [await f for f in engine.submit(batch)], engine.num_calls
        finally:
            await engine.close()

    results, num_calls = asyncio.run(main())
    assert results == [{"result": ["aa"]}, {"result": ["bb", "cc"]}, {"result": ["d-d"]}]
    assert num_calls == 2


def test_a_failing_call_fails_its_requests_alone_naming_engine_node_and_function() -> None:
    async def main() -> list[Any]:
        engine = FunctionEngine()
        batch = [
            _request("q0", fails, {"texts": ["a"]}),
            _request("q1", drops_one, {"texts": ["a", "b"]}),
            _request("q2", double, {"texts": ["ok"]}),
        ]
        try:
            return await asyncio.gather(*engine.submit(batch), return_exceptions=True)
        finally:
            await engine.close()

    failed, broken, ok = asyncio.run(main())
    assert isinstance(failed, EngineError)
    assert str(failed) == (
        "engine 'python' failed node 'fails': function "
        f"{__name__}:fails raised ValueError: no texts today"
    )
    assert isinstance(broken, EngineError)
    assert "returned 1 items for 2 (a batchable function maps items one to one)" in str(broken)
    assert ok == {"result": ["okok"]}


def test_a_process_engine_runs_module_level_functions_and_refuses_local_ones() -> None:
    @function
    def local(texts: list[str]) -> list[str]:
        return texts

    async def main() -> list[Any]:
        engine = FunctionEngine("cpu", use_processes=True, max_num_workers=1)
        batch = [
            _request("q0", double, {"texts": ["x"]}),
            _request("q1", local, {"texts": ["y"]}),
            _request("q2", fails, {"texts": ["z"]}),
        ]
        try:
            return await asyncio.gather(*engine.submit(batch), return_exceptions=True)
        finally:
            await engine.close()

    ran, refused, failed = asyncio.run(main())
    assert ran == {"result": ["xx"]}
    assert isinstance(refused, EngineError)
    assert "cannot run in a process: it is not importable by that name" in str(refused)
    assert isinstance(failed, EngineError) and "raised ValueError: no texts today" in str(failed)


def test_abort_cancels_a_querys_futures_and_refuses_its_late_work() -> None:
    gate = threading.Event()

    @function
    def waits(texts: list[str]) -> list[str]:
        gate.wait(5)
        return texts

    async def main() -> tuple[bool, BaseException | None]:
        engine = FunctionEngine()
        (future,) = engine.submit([_request("q0", waits, {"texts": ["a"]})])
        engine.abort("q0")
        gate.set()
        (late,) = engine.submit([_request("q0", waits, {"texts": ["b"]})])
        try:
            return future.cancelled(), late.exception()
        finally:
            await engine.close()

    is_cancelled, late_error = asyncio.run(main())
    assert is_cancelled and isinstance(late_error, EngineError)
    assert "already ended" in str(late_error)


# -- through a Session ---------------------------------------------------------------
def _ask_all(app: App, questions: list[str], **stack_options: Any) -> list[Any]:
    async def main() -> list[Any]:
        stack = EngineStack.for_apps([app], stack_options.pop("factory", fakes), **stack_options)
        async with stack, Session(stack) as session:
            asks = [session.ask(app, q, DOCS) for q in questions]
            return await asyncio.gather(*asks, return_exceptions=True)

    return asyncio.run(main())


def test_keyword_rag_runs_its_function_on_the_python_engine() -> None:
    stack = EngineStack.for_apps([KEYWORD_RAG], fakes)
    assert isinstance(stack.engines["python"], FunctionEngine)
    assert stack.engines["python"].kind is EngineKind.FUNCTION
    (answer,) = _ask_all(KEYWORD_RAG, ["How many days of paid annual leave?"])
    kept = answer.outputs["kept"]
    asked = set(words("How many days of paid annual leave?"))
    assert kept and all(asked & set(words(h.chunk.text)) for h in kept)
    assert answer.graph.node("keyword_filter").engine == "python"


def _question_app(name: str, step: Any) -> App:
    """``step`` answers the question; an embed beside it gives the stack an engine."""

    def build() -> Any:
        flow = step >> Embed(items="question_list", vectors="vectors")
        return build_template(name, flow, outputs={"answer": "result"})

    return App(name, build)


@function
async def shout_async(question: str) -> str:
    await asyncio.sleep(0)
    if "boom" in question:
        raise RuntimeError("asked to explode")
    return question.upper()


@function
def shout_sync(question: str) -> str:
    if "boom" in question:
        raise RuntimeError("asked to explode")
    return question.upper()


loop_threads: list[int] = []


@function(is_cheap=True)
def shout_inline(question: str) -> str:
    loop_threads.append(threading.get_ident())
    if "boom" in question:
        raise RuntimeError("asked to explode")
    return question.upper()


@pytest.mark.parametrize("spec", [shout_sync, shout_async, shout_inline])
def test_sync_async_and_inline_functions_answer_and_fail_one_query_alone(spec: Any) -> None:
    app = _question_app(f"app_{spec.fn.__name__}", spec())
    ok, failed = _ask_all(app, ["a calm question", "a boom question"])
    assert ok.outputs["answer"] == "A CALM QUESTION"
    assert isinstance(failed, QueryFailed)
    assert failed.node == spec.fn.__name__ and f"primitive '{spec.fn.__name__}'" in str(failed)
    assert f"{__name__}:{spec.fn.__name__} raised RuntimeError: asked to explode" in str(failed)


def test_an_inline_function_runs_on_the_event_loop_and_needs_no_engine() -> None:
    app = _question_app("inline_then_embed", shout_inline())
    loop_threads.clear()

    async def main() -> tuple[Any, int]:
        stack = EngineStack.for_apps([app], fakes)
        assert sorted(stack.engines) == ["embedder"]
        async with stack, Session(stack) as session:
            return await session.ask(app, "quiet"), threading.get_ident()

    answer, loop_thread = asyncio.run(main())
    assert answer.outputs["answer"] == "QUIET" and loop_threads == [loop_thread]


@pytest.mark.parametrize("scheme", ["sequential", "parallel"])
def test_the_baselines_run_function_components(scheme: str) -> None:
    async def main() -> list[Any]:
        stack = EngineStack.for_apps([KEYWORD_RAG], fakes)
        app = _question_app("inline_scheme", shout_inline())
        async with stack, Session(stack) as session:
            rag = await session.ask(KEYWORD_RAG, "How many days of leave?", DOCS, scheme=scheme)
            inline = await session.ask(app, "hi", scheme=scheme)
            return [rag, inline]

    rag, inline = asyncio.run(main())
    assert rag.scheme == scheme and rag.outputs["kept"]
    assert inline.outputs["answer"] == "HI"


def test_a_staged_batchable_function_gives_the_whole_batchs_result() -> None:
    flow = double(reads={"texts": "texts"}, writes={"result": "doubled"}) >> Embed(
        items="doubled", vectors="vectors"
    )
    template = build_template(
        "double_embed", flow, outputs={"vectors": "vectors"}, inputs={"texts": PortType.TEXTS}
    )
    texts = [f"t{i}" for i in range(300)]
    lowered = lower_query(template, Query("unused", inputs={"texts": texts}))
    paying = {
        "python": LatencyProfile(base_s=0.001, per_item_s=0.001, efficient_batch_size=64),
        "embedder": LatencyProfile(base_s=0.001, per_item_s=0.001, efficient_batch_size=64),
    }
    staged = decompose_stages(lowered.graph, paying)
    assert len(staged.nodes_with_op(Op.FUNCTION)) == 5

    async def run(graph: Any) -> Any:
        engines = {
            "python": FunctionEngine(),
            "embedder": FakeEmbedder("embedder", latency_scale=0.0),
        }
        async with Runtime(engines) as runtime:
            return await runtime.run(graph, lowered.inputs)

    whole = asyncio.run(run(lowered.graph)).outputs["vectors"]
    in_stages = asyncio.run(run(staged)).outputs["vectors"]
    assert whole.shape[0] == 300 and (in_stages == whole).all()
    expected = FakeEmbedder("e", latency_scale=0.0)
    assert (whole[7] == expected.compute(_embed_request(["t7t7"]))["vectors"][0]).all()


def _embed_request(texts: list[str]) -> EngineRequest:
    return EngineRequest("q", "embed", Op.EMBED, {"items": texts}, {})


# -- an engine under a name of the user's own ----------------------------------------
def my_engines(
    name: str, kind: EngineKind, budget: CoreBudget, profile: LatencyProfile | None
) -> Engine:
    if name == "hashing":
        return HashingEmbedder(name, budget=budget)
    return fakes(name, kind, budget, profile)


def test_an_engine_under_a_name_of_ones_own_serves_the_app() -> None:
    with pytest.raises(StackError, match=r"uses engine 'hashing'.*custom_engines"):
        EngineStack.for_apps([HASHING_KEYWORD_RAG], my_engines)
    custom = {"hashing": EngineKind.EMBEDDER}
    stack = EngineStack.for_apps([HASHING_KEYWORD_RAG], my_engines, custom_engines=custom)
    assert sorted(stack.engines) == ["hashing", "llm", "python", "reranker", "vector_index"]
    assert isinstance(stack.engines["hashing"], HashingEmbedder)
    assert stack.profiles["hashing"].per_item_s == HashingEmbedder("x").profile.per_item_s
    (answer,) = _ask_all(
        HASHING_KEYWORD_RAG,
        ["Where does the cafeteria serve lunch?"],
        factory=my_engines,
        custom_engines=custom,
    )
    assert answer.passages[0].chunk.text == DOCS[1]
    assert answer.graph.node("embed_question").engine == "hashing"


def test_the_simulator_runs_function_nodes_in_virtual_time() -> None:
    engines = build_engines({"python": EngineKind.FUNCTION}, {"python": LatencyProfile()})
    (engine,) = engines["python"]

    async def main() -> Any:
        (future,) = engine.submit([_request("q0", keyword_filter, {"question": "x", "hits": []})])
        return await future

    assert asyncio.run(main()) == {"result": []}
    assert build_keyword_rag().component("keyword_filter").engine == "python"
