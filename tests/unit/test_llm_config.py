"""LlamaConfig: flash attention on by default, when prompt steps are padded, and the
threads of one-token steps."""

from __future__ import annotations

import pytest

from primflow.engines.llm.config import FLASH_ATTN_TILE_ROWS, MAX_NUM_SEQS, LlamaConfig


def test_flash_attention_is_on_by_default_with_padded_prompt_steps():
    config = LlamaConfig()
    assert config.flash_attn
    assert config.num_pad_rows == FLASH_ATTN_TILE_ROWS


@pytest.mark.parametrize(
    "settings",
    [
        {"flash_attn": False},
        {"is_prompt_step_padded": False},
        # every step is below the tile size, as a one-shot prefill is: nothing to pad
        {"n_batch": FLASH_ATTN_TILE_ROWS - 1},
    ],
)
def test_no_padding(settings):
    assert LlamaConfig(**settings).num_pad_rows == 0


def test_padding_takes_one_of_llama_cpps_sequences():
    assert LlamaConfig(flash_attn=False, n_seq_max=MAX_NUM_SEQS).n_seq_max == MAX_NUM_SEQS
    with pytest.raises(ValueError, match=rf"n_seq_max must be in \[1, {MAX_NUM_SEQS - 1}\]"):
        LlamaConfig(n_seq_max=MAX_NUM_SEQS)


def test_one_token_steps_run_on_one_thread_by_default():
    assert LlamaConfig().n_threads_one_token == 1
    assert LlamaConfig(n_threads_one_token=None).n_threads_one_token is None
    with pytest.raises(ValueError, match="n_threads_one_token must be >= 1"):
        LlamaConfig(n_threads_one_token=0)
