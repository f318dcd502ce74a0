"""The LLM engine on the real SmolLM2 under pressure: prefix copies from parked requests,
KV admission (backpressure instead of failures), and the Q4_0 option."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from llm_calls import DOCUMENT, SYSTEM, generate, one, request, wait_until

from primflow.engines.base import EngineError
from primflow.engines.llm import LlamaEngine
from primflow.engines.llm.model import default_model_path
from primflow.engines.llm.quantize import file_sha256, requantized
from primflow.graph.ir import Op

pytestmark = pytest.mark.engines


async def test_a_partial_prefill_copied_whole_from_a_parked_one_resolves_at_once():
    """naive_rag's tree synthesis: level1_0 and level2_0 open with the same instruction.
    The second copies the first's computed prefix and must resolve then, not when its
    full prefill (which waits on other LLM calls) is computed (G-requests item 3)."""
    template = "Combine the partial answers into one answer.\nQuestion: {q}\n"
    inputs = {"q": "How many days of paid annual leave do full-time employees get?"}
    engine = LlamaEngine("llm-tree", n_ctx=1024, n_threads=1)
    calls = [
        request(
            "q-tree",
            f"level{i}.partial",
            Op.LLM_PARTIAL_PREFILL,
            rid=f"q-tree/level{i}",
            template=template,
            system=SYSTEM,
            inputs=inputs,
        )
        for i in (1, 2)
    ]
    try:
        async with asyncio.timeout(30):  # a liveness bound: without the fix it never resolves
            first, second = await asyncio.gather(*engine.submit(calls))
        stats = engine.stats()
    finally:
        await engine.close()
    assert first["state"].num_tokens == second["state"].num_tokens
    assert stats["num_reused_tokens"] >= second["state"].num_tokens  # copied, not computed


async def test_concurrent_calls_wait_for_kv_cells_instead_of_failing():
    """contextual_retrieval in small: 8 calls on one document need more KV cells than the
    context has if all generate at once; admission holds some back instead of failing a
    running decode with "KV cache full" (G-requests item 4)."""
    eng = LlamaEngine("llm-kv", n_ctx=512, n_seq_max=16, n_threads=1, kv_reserve_tokens=16)
    template = "Passage: {doc}\nWrite the numbers from {n} to 100, one per line."
    try:
        states = await asyncio.gather(
            *(
                one(
                    eng,
                    request(
                        f"q-kv-{i}",
                        "prefill",
                        Op.LLM_PREFILL,
                        template=template,
                        system=SYSTEM,
                        inputs={"doc": DOCUMENT, "n": str(i)},
                    ),
                )
                for i in range(8)
            )
        )
        decodes = eng.submit(
            [
                request(f"q-kv-{i}", "decode", Op.LLM_DECODE, max_tokens=96, ignore_eos=True)
                for i in range(8)
            ]
        )
        texts = [r["text"] for r in await asyncio.gather(*decodes)]
        await wait_until(lambda: eng.stats()["num_requests"] == 8)
        stats = eng.stats()
        # A request that can never fit fails with a clear error; the engine keeps serving.
        await one(eng, request("q-big", "p", Op.LLM_PREFILL, template="Count to 1000."))
        # n_ctx cells at least (the flash-attention filler's cells come on top, runner.py)
        with pytest.raises(EngineError, match=r"max_tokens is 1000.*\((\d+) cells\)") as err:
            await one(eng, request("q-big", "d", Op.LLM_DECODE, max_tokens=1000))
    finally:
        await eng.close()
    found = re.search(r"\((\d+) cells\)", str(err.value))
    assert found is not None
    num_cells = int(found.group(1))
    assert 512 <= num_cells < 1000
    num_prompt_tokens = states[0]["state"].num_tokens
    assert all(texts)
    # Generated + one prompt is more than the cache: the calls could not all run at once.
    assert stats["num_decoded_tokens"] + num_prompt_tokens > num_cells


async def test_q4_0_conversion_is_cached_by_source_hash_and_answers(tmp_path, monkeypatch):
    monkeypatch.setenv("PRIMFLOW_CACHE_DIR", str(tmp_path))
    eng = LlamaEngine("llm-q4", n_ctx=512, n_threads=1, quantization="q4_0", flash_attn=True)
    try:
        result = await generate(eng, "q-q4", "What is the capital of France?", 20)
    finally:
        await eng.close()
    assert "Paris" in result["text"]
    [converted] = (tmp_path / "models").iterdir()  # no temporary file left behind
    source = default_model_path()
    assert converted.name.startswith(Path(source).stem)
    assert file_sha256(source)[:16] in converted.name and converted.name.endswith("-q4_0.gguf")
    mtime = converted.stat().st_mtime_ns
    assert requantized(source, "q4_0") == str(converted)  # reused, not converted again
    assert converted.stat().st_mtime_ns == mtime
    with pytest.raises(ValueError, match="quantization must be None or 'q4_0'"):
        LlamaEngine("llm-q8", quantization="q8")
