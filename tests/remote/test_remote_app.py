"""A whole application on a mixed stack: the LLM on a real llama-cpp-python server, the
embedder, index and reranker embedded (configured the way `--engines FILE` does)."""

from __future__ import annotations

import re

import pytest
from remote_servers import MODEL_ALIAS, LlamaServer

from primflow.apps.samples import sample_documents
from primflow.engines.remote import RemoteLLMEngine
from primflow.graph.ir import Op
from primflow.session import EngineStack, Session, embedded_factory
from primflow.session.engine_config import config_factory, parse_engine_config

pytestmark = [pytest.mark.remote, pytest.mark.engines]

QUESTION = "What does the paper report about end-to-end speedup?"
CHANGES = {"max_tokens": 16, "expansion_max_tokens": 48, "chunk_size": 300}


async def test_advanced_rag_answers_through_the_remote_llm(llama_server: LlamaServer) -> None:
    config = parse_engine_config(
        {
            "engines": {
                "llm": {
                    "backend": "openai",
                    "base_url": llama_server.base_url,
                    "model": MODEL_ALIAS,
                    "dialect": "llama_cpp_python",
                    "max_concurrent_requests": 4,
                },
                "embedder": {"backend": "embedded"},
            }
        }
    )
    stack = EngineStack.for_apps(["advanced_rag"], config_factory(config, embedded_factory()))
    llm = stack.engines["llm"]
    assert isinstance(llm, RemoteLLMEngine)
    start = len(llama_server.log())
    streamed: list[str] = []
    async with stack, Session(stack) as session:
        answer = await session.ask(
            "advanced_rag",
            QUESTION,
            sample_documents(),
            on_text=streamed.append,
            config_changes=CHANGES,
        )
    assert answer.text.strip() and "".join(streamed).strip() == answer.text.strip()
    ops = {p.node: answer.graph.node(p.node).op for p in answer.timing.primitives}
    on_llm = {p.node for p in answer.timing.primitives if p.engine == "llm"}
    assert any(ops[n] is Op.LLM_PARTIAL_PREFILL for n in on_llm)  # the warm-up, timed
    assert any(ops[n] is Op.LLM_PARTIAL_DECODE for n in on_llm)  # expanded queries
    assert llm.stats()["num_warmups"] >= 1
    assert re.search(r"prefix-match hit", llama_server.log()[start:])
