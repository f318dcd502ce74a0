"""The runner's thread counts as llama.cpp sees them: one-token steps take their own.

llama.cpp runs a step of one token on its context's ``n_threads`` and any other step on
``n_threads_batch``; ``n_threads_one_token`` sets the first (a lone sequence's decode
then runs without OpenMP barriers, which stall when an outside job takes a core:
docs/results/llm-engine.md#one-request-at-a-time-under-outside-load). No step is run
here: the counts are read back from the context.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import llama_cpp as lc
import pytest

from primflow.engines.llm.model import LlamaModel, default_model_path
from primflow.engines.llm.runner import LlamaRunner

pytestmark = pytest.mark.engines


@pytest.fixture(scope="module")
def model() -> Iterator[LlamaModel]:
    loaded = LlamaModel(default_model_path())
    yield loaded
    loaded.close()


@contextmanager
def runner_on(model: LlamaModel, n_threads_one_token: int | None = None) -> Iterator[LlamaRunner]:
    """A 2-thread runner with ``n_threads_one_token``, closed on the way out."""
    runner = LlamaRunner(
        model, 256, 64, 1, 2, flash_attn=True, n_threads_one_token=n_threads_one_token
    )
    try:
        yield runner
    finally:
        runner.close()


def thread_counts(runner: LlamaRunner) -> tuple[int, int]:
    """(one-token steps, other steps) of the runner's context."""
    return int(lc.llama_n_threads(runner.ctx)), int(lc.llama_n_threads_batch(runner.ctx))


def test_one_token_steps_keep_their_own_count_as_the_budget_share_changes(model):
    with runner_on(model, n_threads_one_token=1) as runner:
        assert thread_counts(runner) == (1, 2)
        runner.set_num_threads(1)  # the core budget's share shrinks
        assert thread_counts(runner) == (1, 1)
        runner.set_num_threads(2)
        assert thread_counts(runner) == (1, 2)


def test_one_token_count_is_capped_by_the_share(model):
    with runner_on(model, n_threads_one_token=2) as runner:
        assert thread_counts(runner) == (2, 2)
        runner.set_num_threads(1)
        assert thread_counts(runner) == (1, 1)


def test_without_a_one_token_count_every_step_takes_n_threads(model):
    with runner_on(model) as runner:
        assert thread_counts(runner) == (2, 2)
