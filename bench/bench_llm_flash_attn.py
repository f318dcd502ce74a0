"""Flash attention on or off for the LLM engine: split-prefill exactness against speed.

The engine prefills a prompt in pieces (partial prefill of the instructions and the
question while the passages are retrieved, then the rest). Greedy decoding after a
split prefill should equal decoding after a one-shot prefill of the same text. With
flash attention, llama.cpp's CPU kernel computes a step of >= 64 query rows tiled and a
smaller one row by row, rounding differently; the engine pads a step with prompt tokens
to 64 rows (``is_prompt_step_padded``, the default). This script measures, on seeded RAG
prompts (~420 tokens), for flash attention off, on without the padding, and on (the
default, padded):

- exactness: fresh engines (the same KV cells on both sides), one-shot prefill vs
  partial prefill of the opening + full prefill of the rest; the share of the greedy
  answers (32 tokens, ``ignore_eos``) that are identical, and the first differing token;
- speed, off against on (the default): the same 4 prompts one at a time and 4 at once on
  one engine (one-shot prefill), and one at a time with split prefill (the padded
  opening); paired and alternating between the two settings.

Prints one result line and saves docs/bench/llm_flash_attn.json (or ``--out``).

    PYTHONPATH=.:bench .venv/bin/python bench/bench_llm_flash_attn.py [--num-prompts 8]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import itertools
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from bench_parity_common import passages, questions

from primflow.engines.base import EngineRequest
from primflow.engines.llm import LlamaEngine
from primflow.graph.ir import Op

OUT_PATH = Path(__file__).resolve().parents[1] / "docs" / "bench" / "llm_flash_attn.json"
MAX_TOKENS = 32
OPENING = "Answer the question using only the context. Be brief.\nQuestion: {question}\n"
REST = "Context:\n{context}\nAnswer:"
_query_numbers = itertools.count()
# Engine settings by name: flash attention off, on without padding, on (the default).
SETTINGS: dict[str, dict[str, bool]] = {
    "off": {"flash_attn": False},
    "on_unpadded": {"flash_attn": True, "is_prompt_step_padded": False},
    "on": {"flash_attn": True},
}


def rag_parts(seed: int, num: int) -> list[tuple[str, str]]:
    """(opening, context) of ``num`` RAG prompts, each over 3 seeded passages."""
    contexts = passages(seed, 3 * num, 220, 300)
    return [
        (
            OPENING.format(question=q),
            "\n".join(f"[{j + 1}] {p}" for j, p in enumerate(contexts[3 * i : 3 * i + 3])),
        )
        for i, q in enumerate(questions(num))
    ]


def _request(query: str, node: str, op: Op, inputs: dict[str, Any], **params: Any) -> EngineRequest:
    return EngineRequest(query, node, op, inputs, params, llm_request_id=query)


async def _one(engine: LlamaEngine, request: EngineRequest) -> dict[str, Any]:
    [future] = engine.submit([request])
    return await future


async def answer(engine: LlamaEngine, query: str, opening: str, context: str, split: bool) -> str:
    """Greedy answer after a one-shot prefill, or after a split one (opening, then rest)."""
    if split:
        partial = await _one(
            engine, _request(query, "partial", Op.LLM_PARTIAL_PREFILL, {}, template=opening)
        )
        inputs = {"context": context, "state": partial["state"]}
        await _one(engine, _request(query, "full", Op.LLM_FULL_PREFILL, inputs, template=REST))
    else:
        inputs = {"context": context}
        await _one(
            engine, _request(query, "prefill", Op.LLM_PREFILL, inputs, template=opening + REST)
        )
    decode = _request(query, "decode", Op.LLM_DECODE, {}, max_tokens=MAX_TOKENS, ignore_eos=True)
    text = str((await _one(engine, decode))["text"])
    engine.abort(query)  # forgets its cached prompt: no reuse by the next call
    return text


def _engine(name: str, setting: str) -> LlamaEngine:
    return LlamaEngine(name, min_reuse_tokens=10**6, **SETTINGS[setting])


async def exactness(parts: list[tuple[str, str]], setting: str) -> dict[str, Any]:
    same = 0
    first_diffs = []
    num_pad_tokens = 0
    for i, (opening, context) in enumerate(parts):
        texts = []
        for split in (False, True):  # a fresh engine each: the same KV cells both ways
            engine = _engine(f"llm-exact-{int(split)}", setting)
            try:
                texts.append(await answer(engine, f"q{i}", opening, context, split))
                num_pad_tokens += engine.stats()["num_pad_tokens"]
            finally:
                await engine.close()
        if texts[0] == texts[1]:
            same += 1
        else:
            pairs = enumerate(zip(texts[0], texts[1], strict=False))
            shorter = min(len(t) for t in texts)
            first_diffs.append(next((j for j, (a, b) in pairs if a != b), shorter))
    return {
        "num_prompts": len(parts),
        "num_identical": same,
        "first_diff_chars": first_diffs,
        "num_pad_tokens": num_pad_tokens,
    }


async def timed(
    engine: LlamaEngine, parts: list[tuple[str, str]], at_once: bool, split: bool = False
) -> float:
    # A fresh query id per call: an aborted id stays closed on the engine.
    calls = [answer(engine, f"t{next(_query_numbers)}", *p, split=split) for p in parts]
    started_s = time.perf_counter()
    if at_once:
        await asyncio.gather(*calls)
    else:
        for call in calls:
            await call
    return time.perf_counter() - started_s


SPEED_MODES = (  # (label, at once, split prefill)
    ("one_at_a_time", False, False),
    ("four_at_once", True, False),
    ("one_at_a_time_split", False, True),
)


async def speed(parts: list[tuple[str, str]], rounds: int) -> dict[str, Any]:
    engines = {False: _engine("llm-fa-off", "off"), True: _engine("llm-fa-on", "on")}
    result: dict[str, Any] = {}
    try:
        for engine in engines.values():
            await timed(engine, parts[:1], at_once=False)  # warm up
        for label, at_once, split in SPEED_MODES:
            seconds: dict[bool, list[float]] = {False: [], True: []}
            for i in range(rounds):
                for fa in (False, True) if i % 2 == 0 else (True, False):
                    seconds[fa].append(await timed(engines[fa], parts[:4], at_once, split))
            off, on = statistics.median(seconds[False]), statistics.median(seconds[True])
            result[label] = {"off_s": seconds[False], "on_s": seconds[True], "speedup": off / on}
            print(f"{label}: FA off {off:.2f}s, FA on {on:.2f}s, {off / on:.2f}x", flush=True)
    finally:
        for engine in engines.values():
            await engine.close()
    return result


async def main(args: argparse.Namespace) -> dict[str, Any]:
    parts = rag_parts(args.seed, args.num_prompts)
    result: dict[str, Any] = {
        "benchmark": "llm_flash_attn",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "seed": args.seed,
        "max_tokens": MAX_TOKENS,
        "load_avg_start": os.getloadavg(),
    }
    for setting in SETTINGS:
        found = await exactness(parts, setting)
        print(
            f"flash attention {setting}: split prefill identical "
            f"{found['num_identical']}/{found['num_prompts']}",
            flush=True,
        )
        result[f"exact_fa_{setting}"] = found
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")  # kept if the speed part fails
    result["speed"] = await speed(parts, args.rounds)
    result["load_avg_end"] = os.getloadavg()
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-prompts", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT_PATH)
    arguments = parser.parse_args()
    found = asyncio.run(main(arguments))
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(found, indent=2) + "\n")
    exact = ", ".join(
        f"{s} {found[f'exact_fa_{s}']['num_identical']}/{found[f'exact_fa_{s}']['num_prompts']}"
        for s in SETTINGS
    )
    speedups = ", ".join(f"{k} {v['speedup']:.2f}x" for k, v in found["speed"].items())
    print(f"flash attention: split prefill identical {exact}; speedup of on: {speedups}")
