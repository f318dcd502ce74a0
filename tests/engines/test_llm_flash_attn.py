"""Flash attention with padded prompt steps: split prefill bit-exact, on the real model.

llama.cpp's CPU flash-attention kernel computes a step of >= 64 query rows tiled and a
smaller one row by row; the runner pads a step with prompt tokens to 64 rows with a
scratch sequence, so a short opening is computed the way a one-shot prefill computes it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pytest
from llm_calls import DOCUMENT, generate, one, request

from primflow.engines.llm import LlamaEngine
from primflow.engines.llm.config import FLASH_ATTN_TILE_ROWS
from primflow.engines.llm.model import LlamaModel, default_model_path
from primflow.engines.llm.runner import Chunk, LlamaRunner
from primflow.graph.ir import Op

pytestmark = pytest.mark.engines

OPENING = "Answer the question using only the passage.\nQuestion: How long is the Zorblat river?\n"
REST = f"Passage: {DOCUMENT}\nAnswer:"


@pytest.fixture(scope="module")
def model() -> Iterator[LlamaModel]:
    loaded = LlamaModel(default_model_path())
    yield loaded
    loaded.close()


def prompt_tokens(model: LlamaModel) -> tuple[list[int], int]:
    """The prompt's tokens and the opening's length (a prefix of the tokens)."""
    opening = model.tokenize(OPENING, parse_special=False, add_bos=True)
    rest = model.tokenize(REST, parse_special=False)
    return opening + rest, len(opening)


def last_logits(model: LlamaModel, tokens: list[int], cuts: list[int], pad_rows: int) -> np.ndarray:
    """Prefill ``tokens`` in chunks ending at ``cuts`` on a fresh runner (flash attention
    on); the logits of the last token."""
    runner = LlamaRunner(model, 512, 512, 4, 1, flash_attn=True, pad_rows=pad_rows)
    try:
        bounds = [0, *cuts, len(tokens)]
        for start, end in itertools.pairwise(bounds):
            is_last = end == len(tokens)
            chunk = Chunk(0, start, tokens[start:end], is_last, is_padded_prompt=True)
            rows = runner.decode([chunk])
            assert runner.max_pos(runner.pad_seq_id) == -1  # the filler is gone at once
        assert runner.max_pos(0) == len(tokens) - 1
        return rows[0].copy()
    finally:
        runner.close()


def test_padded_split_prefill_gives_the_one_shot_logits_bit_for_bit(model):
    tokens, num_opening = prompt_tokens(model)
    assert num_opening < FLASH_ATTN_TILE_ROWS <= len(tokens) - num_opening
    one_shot = last_logits(model, tokens, [], FLASH_ATTN_TILE_ROWS)
    padded = last_logits(model, tokens, [num_opening], FLASH_ATTN_TILE_ROWS)
    assert np.array_equal(padded, one_shot)


def test_unpadded_split_prefill_rounds_differently(model):
    """Without the filler the short opening takes the kernel's row-by-row path: the
    logits differ from one-shot, which is what the padding is for."""
    tokens, num_opening = prompt_tokens(model)
    one_shot = last_logits(model, tokens, [], 0)
    unpadded = last_logits(model, tokens, [num_opening], 0)
    assert not np.array_equal(unpadded, one_shot)


def test_a_short_last_chunk_is_padded_too(model):
    tokens, num_opening = prompt_tokens(model)
    tail = len(tokens) - 10  # the last chunk has 10 tokens
    one_shot = last_logits(model, tokens, [], FLASH_ATTN_TILE_ROWS)
    padded = last_logits(model, tokens, [num_opening, tail], FLASH_ATTN_TILE_ROWS)
    assert np.array_equal(padded, one_shot)


async def test_engine_pads_an_open_prompt_but_not_a_short_closed_one():
    engine = LlamaEngine("llm-pad", n_ctx=1024, n_threads=1, min_reuse_tokens=10**6)
    try:
        await generate(engine, "q-short", "Name a fruit.", max_tokens=4)
        assert engine.stats()["num_pad_tokens"] == 0  # a one-shot prompt under 64 tokens
        partial = await one(
            engine, request("q-open", "partial", Op.LLM_PARTIAL_PREFILL, template=OPENING)
        )
        num_opening = partial["state"].num_tokens
        assert num_opening < FLASH_ATTN_TILE_ROWS
        assert engine.stats()["num_pad_tokens"] == FLASH_ATTN_TILE_ROWS - num_opening
        positions = await engine.kv_positions()
        assert sorted(p for p in positions.values() if p >= 0) == [num_opening - 1]
        engine.abort("q-open")
    finally:
        await engine.close()
