"""Scoring a constrained choice by log-probability, and contextual calibration of it.

A judge's decode may pick its answer by comparing the allowed answers' log-probabilities
after the prompt instead of sampling under a grammar. With contextual calibration (Zhao
et al. 2021, "Calibrate Before Use") each answer's score has its log-probability under
the same prompt with content-free inputs (every placeholder "N/A") subtracted, which
removes the model's bias towards an answer whatever the question (a 135M model says
"yes" to nearly everything). Pure numpy, no llama calls: the engine drives it
(calibration.py). Invariants:

- An answer's log-probability is that of any of its surface forms (as written, and
  capitalized: a chat model starts its reply with a capital, so "yes" alone is an
  unlikely and noisy form), the log-sum-exp over the forms. A form's log-probability is
  the sum over its tokens of log p(token | prompt and the form's earlier tokens), by
  teacher forcing; it does not include the end of the answer, so an answer that is a
  prefix of another is not told apart from it.
- :class:`ChoiceScorer` asks for the logits after every proper prefix of every form's
  tokens exactly once, in preorder of the forms' token trie (sorted token tuples):
  each context it asks for next is the previous one cut back to an ancestor plus
  exactly one token. Answers of one token need only the prompt's own logits.
- ``calibrated = log p(answer | prompt) - log p(answer | content-free prompt) + bias``;
  the decision is the answer with the highest calibrated score, the earlier answer on
  a tie.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

CONTENT_FREE = "N/A"  # what every placeholder renders as in the content-free prompt

Scores = dict[str, dict[str, float]]  # answer -> {"logprob", "prior", "bias", "calibrated"}


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities of one logit row (float64, stable for large logits)."""
    row = np.asarray(logits, dtype=np.float64)
    shifted: np.ndarray = row - row.max()
    return shifted - float(np.log(np.exp(shifted).sum()))


def surface_forms(answer: str) -> list[str]:
    """The forms an answer is scored in: as written and capitalized (once if equal)."""
    return list(dict.fromkeys([answer, answer[:1].upper() + answer[1:]]))


class ChoiceScorer:
    """Accumulates each answer's log-probability from the logit rows it asks for.

    ``answer_forms``: answer -> the token ids of each of its surface forms."""

    def __init__(self, answer_forms: Mapping[str, Sequence[Sequence[int]]]) -> None:
        empty = [a for a, forms in answer_forms.items() if not forms or not all(forms)]
        if not answer_forms or empty:
            raise ValueError(f"every answer form needs at least one token, got {empty}")
        self._form_logprobs = {a: [0.0] * len(forms) for a, forms in answer_forms.items()}
        # context (tokens of a form so far) -> the forms read there, with their next token
        self._next_tokens: dict[tuple[int, ...], list[tuple[str, int, int]]] = {}
        for answer, forms in answer_forms.items():
            for i, tokens in enumerate(forms):
                for k, token in enumerate(tokens):
                    step = (answer, i, int(token))
                    self._next_tokens.setdefault(tuple(tokens[:k]), []).append(step)
        self._contexts = sorted(self._next_tokens)  # preorder of the token trie
        self._position = 0
        self.max_num_forced_tokens = max(len(c) for c in self._contexts)

    @property
    def logprobs(self) -> dict[str, float]:
        """Per answer, the log-sum-exp of its forms' log-probabilities so far."""
        return {a: float(np.logaddexp.reduce(lps)) for a, lps in self._form_logprobs.items()}

    @property
    def context(self) -> tuple[int, ...] | None:
        """The answer tokens after the prompt whose logits are needed next; None when done."""
        if self._position >= len(self._contexts):
            return None
        return self._contexts[self._position]

    @property
    def is_done(self) -> bool:
        return self.context is None

    def feed(self, logits: np.ndarray) -> None:
        """The logits after the prompt followed by :attr:`context`."""
        context = self.context
        if context is None:
            raise ValueError("every answer is already scored")
        logprobs = log_softmax(logits)
        for answer, form, token in self._next_tokens[context]:
            self._form_logprobs[answer][form] += float(logprobs[token])
        self._position += 1


def calibrated_scores(
    answers: Sequence[str],
    logprobs: Mapping[str, float],
    prior: Mapping[str, float] | None,
    bias: Mapping[str, float] | None = None,
) -> Scores:
    """Per answer: its log-probability, its content-free prior (0 without calibration),
    its bias and the calibrated score ``logprob - prior + bias``."""
    scores: Scores = {}
    for answer in answers:
        prior_logprob = prior[answer] if prior is not None else 0.0
        offset = (bias or {}).get(answer, 0.0)
        scores[answer] = {
            "logprob": round(logprobs[answer], 4),
            "prior": round(prior_logprob, 4),
            "bias": offset,
            "calibrated": round(logprobs[answer] - prior_logprob + offset, 4),
        }
    return scores


def decide(scores: Scores) -> str:
    """The answer with the highest calibrated score (the earlier one on a tie)."""
    if not scores:
        raise ValueError("no answers to decide between")
    best = max(s["calibrated"] for s in scores.values())
    return next(a for a, s in scores.items() if s["calibrated"] == best)


def check_bias(bias: Mapping[str, float], answers: Sequence[str], where: str) -> dict[str, float]:
    """``bias`` as floats; a key that is not an allowed answer is an error naming it."""
    stray = [k for k in bias if k not in answers]
    if stray:
        raise ValueError(f"{where}: bias names {stray[0]!r}, which is not one of {list(answers)}")
    try:
        return {str(k): float(v) for k, v in bias.items()}
    except (TypeError, ValueError):
        raise ValueError(f"{where}: bias values must be numbers, got {dict(bias)}") from None
