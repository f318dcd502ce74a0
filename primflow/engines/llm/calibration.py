"""Calibrated choices on the LLM engine: score a judge's answers, get the content-free
prior (computed once, cached), decide. Engine thread only.

A decode with ``choices`` and ``calibrate`` does not sample under a grammar: its
sequence is scored by a :class:`~.choice_scoring.ChoiceScorer` (each answer's
log-probability after the prompt), the same answers are scored after the prompt with
content-free inputs (the prefill's ``content_free`` param rendered in every
placeholder), and the answer with the highest calibrated score is the decision.
Invariants:

- A scoring sequence generates no text: after its prompt it holds only the forced tokens
  of the answer context the scorer asks for next; moving on to the next context cuts
  its tokens, KV cells and ledger back to the shared ancestor first. Each forced token
  is a decode token of an ordinary step, batched with every other sequence's, and
  answers of one token need none.
- The prior of one (system prompt, content-free prompt, answers) is computed once per
  engine (one model) by one extra short sequence, and cached (LRU, ``MAX_NUM_PRIORS``);
  a judge whose prior is being computed waits for it. If that sequence fails, the
  judges still waiting on it fail with the same error.
- The decision's text is exactly the chosen answer; the decode's outputs also carry the
  scores under ``CHOICE_SCORES`` (per answer: logprob, prior, bias, calibrated).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from primflow.engines.base import EngineError
from primflow.engines.llm.choice_scoring import (
    ChoiceScorer,
    calibrated_scores,
    decide,
    surface_forms,
)
from primflow.engines.llm.generation import Generator
from primflow.engines.llm.prompting import PromptBuilder
from primflow.engines.llm.runner import LlamaRunner
from primflow.engines.llm.sampling import SamplingParams
from primflow.engines.llm.scheduler import StepScheduler
from primflow.engines.llm.sequence import PriorKey, Sequence

MAX_NUM_PRIORS = 256


def is_calibrated(params: Mapping[str, Any]) -> bool:
    """The decode picks its choice by calibrated scores rather than under a grammar."""
    return bool(params.get("choices")) and bool(params.get("calibrate"))


@dataclass(slots=True)
class PendingPrior:
    seq: Sequence  # the content-free prompt's scoring sequence
    judges: list[Sequence] = field(default_factory=list)  # waiting for it


class ChoiceCalibration:
    """The calibrated-choice side of an engine core; state set up by :meth:`_init_priors`."""

    name: str
    scheduler: StepScheduler
    runner: LlamaRunner
    prompts: PromptBuilder
    generator: Generator
    _requests: dict[str, Sequence]
    _priors: OrderedDict[PriorKey, dict[str, float]]
    _pending_priors: dict[PriorKey, PendingPrior]

    def _init_priors(self) -> None:
        self._priors = OrderedDict()
        self._pending_priors = {}

    def num_cached_priors(self) -> int:
        return len(self._priors)

    def _start_scoring(self, seq: Sequence, params: Mapping[str, Any]) -> None:
        """A calibrated choice's first decode phase arrived: score instead of sampling,
        and start computing its prior unless it is cached or on its way."""
        if seq.content_free is None:
            raise ValueError(
                "a calibrated choice needs its prefills' 'content_free' param "
                "(Judge(calibrate=True) sets it)"
            )
        answers = [str(c) for c in params["choices"]]
        seq.scorer = self._scorer(answers)
        seq.choice_bias = {str(k): float(v) for k, v in (params.get("choice_bias") or {}).items()}
        if seq.max_new_tokens is not None and seq.scorer.max_num_forced_tokens > seq.max_new_tokens:
            raise ValueError(
                f"the choices need {seq.scorer.max_num_forced_tokens} forced tokens to be "
                f"scored but max_tokens is {seq.max_new_tokens}"
            )
        seq.prior_key = (seq.system, seq.content_free, tuple(answers))
        self._ensure_prior(seq)

    def _scorer(self, answers: list[str]) -> ChoiceScorer:
        model = self.generator.model
        return ChoiceScorer(
            {a: [model.tokenize(f, parse_special=False) for f in surface_forms(a)] for a in answers}
        )

    def _ensure_prior(self, judge: Sequence) -> dict[str, float] | None:
        """The judge's prior if cached; otherwise the judge waits for its computation."""
        key = judge.prior_key
        assert key is not None
        prior = self._priors.get(key)
        if prior is not None:
            self._priors.move_to_end(key)
            return prior
        pending = self._pending_priors.get(key)
        if pending is None:
            pending = self._pending_priors[key] = PendingPrior(self._open_prior(judge, key))
        if judge not in pending.judges:
            pending.judges.append(judge)
        return None

    def _open_prior(self, judge: Sequence, key: PriorKey) -> Sequence:
        system, content_free, answers = key
        tokens = self.prompts.opening(system, content_free, is_closed=True)
        prior = Sequence(
            request_id=f"{judge.request_id}#prior",
            query_id=judge.query_id,  # batched as part of the query that needs it first
            tokens=tokens,
            is_prompt_closed=True,
            system=system,
            num_content_chars=len(content_free.strip()),
            arrival_s=judge.arrival_s,
            priority=judge.priority,
            query_start_s=judge.query_start_s,
            query_priority=judge.query_priority,
            depth=judge.depth,
            policy=judge.policy,
        )
        prior.scorer = self._scorer(list(answers))
        prior.prior_key = key
        prior.is_prior = True
        prior.decode_node = judge.decode_node
        prior.sampling = SamplingParams(max_tokens=max(1, prior.scorer.max_num_forced_tokens))
        self.scheduler.set_max_new_tokens(prior, prior.sampling.max_tokens)
        self.scheduler.add(prior)
        return prior

    def _score_token(self, seq: Sequence, logits: np.ndarray) -> None:
        """The logits after the prompt and the forced tokens: score, force the next one."""
        scorer = seq.scorer
        assert scorer is not None
        scorer.feed(logits)
        context = scorer.context
        if context is not None:
            self._force(seq, context)
        elif seq.is_prior:
            self._prior_done(seq)
        else:
            prior = self._ensure_prior(seq)
            if prior is not None:
                self._decide(seq, prior)

    def _force(self, seq: Sequence, context: tuple[int, ...]) -> None:
        """Make the tokens after the prompt ``context``: cut back to its parent (an
        ancestor of what is there, by the scorer's preorder) and append its last token."""
        keep = seq.num_prompt_tokens + len(context) - 1
        del seq.tokens[keep:]
        if seq.num_computed > keep:
            seq.num_computed = keep
            if seq.slot is not None:
                self.scheduler.ledger.truncate(seq.slot, keep)
                self.runner.remove(seq.slot, keep)
        seq.tokens.append(context[-1])

    def _prior_done(self, prior: Sequence) -> None:
        key = prior.prior_key
        assert key is not None and prior.scorer is not None
        logprobs = dict(prior.scorer.logprobs)
        self._priors[key] = logprobs
        while len(self._priors) > MAX_NUM_PRIORS:
            self._priors.popitem(last=False)
        pending = self._pending_priors.pop(key, None)
        prior.scorer = None
        self._finish_scoring(prior)
        for judge in pending.judges if pending is not None else []:
            if self._is_live(judge) and judge.scorer is not None and judge.scorer.is_done:
                self._decide(judge, logprobs)

    def _decide(self, seq: Sequence, prior: dict[str, float]) -> None:
        assert seq.scorer is not None and seq.prior_key is not None
        answers = seq.prior_key[2]
        seq.choice_scores = calibrated_scores(answers, seq.scorer.logprobs, prior, seq.choice_bias)
        seq.scorer = None
        self.generator.finish_choice(seq, decide(seq.choice_scores))
        self._finish_scoring(seq)

    def _finish_scoring(self, seq: Sequence) -> None:
        seq.is_finished = True
        for slot, from_pos in self.scheduler.finish(seq, time.monotonic()):
            self.runner.remove(slot, from_pos)

    def _is_live(self, seq: Sequence) -> bool:
        return self._requests.get(seq.request_id) is seq and not seq.is_finished

    def _prior_failed(self, prior: Sequence, error: EngineError) -> list[Sequence]:
        """A prior's sequence was dropped: the judges still waiting on it, to fail."""
        if not prior.is_prior or prior.prior_key is None:
            return []
        pending = self._pending_priors.pop(prior.prior_key, None)
        if pending is None or pending.seq is not prior:
            return []
        return [j for j in pending.judges if self._is_live(j)]
