"""Contextual calibration of a constrained choice, with a fake scorer (a tiny fake LM).

The fake LM maps the tokens after the prompt to a logit row, so the scorer's walk over
the answers' token trie and its sums can be checked against log-probabilities computed
here by brute force.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

from primflow.engines.llm.choice_scoring import (
    ChoiceScorer,
    calibrated_scores,
    check_bias,
    decide,
    log_softmax,
    surface_forms,
)

NUM_VOCAB = 16


def fake_logits(prompt: str, context: tuple[int, ...]) -> np.ndarray:
    """A deterministic logit row for ``prompt`` followed by the answer tokens ``context``."""
    rng = np.random.default_rng(zlib.crc32(repr((prompt, context)).encode()))
    return rng.normal(0.0, 3.0, NUM_VOCAB)


def brute_logprob(prompt: str, tokens: list[int]) -> float:
    return sum(
        float(log_softmax(fake_logits(prompt, tuple(tokens[:k])))[token])
        for k, token in enumerate(tokens)
    )


def drive(scorer: ChoiceScorer, prompt: str) -> list[tuple[int, ...]]:
    """Run the scorer as the engine does: the prompt's logits, then one forced token per
    step; return the contexts it asked for, checking each is one token past an ancestor
    of the previous one (what the engine cuts back to)."""
    asked: list[tuple[int, ...]] = []
    while (context := scorer.context) is not None:
        if asked:
            assert asked[-1][: len(context) - 1] == context[:-1]
        asked.append(context)
        scorer.feed(fake_logits(prompt, context))
    return asked


def test_log_softmax_is_a_distribution_and_stable() -> None:
    row = log_softmax(np.array([1000.0, 999.0, -5.0]))
    assert math.isclose(float(np.exp(row).sum()), 1.0)
    assert row[0] > row[1] > row[2]


def test_single_token_answers_need_only_the_prompts_logits() -> None:
    scorer = ChoiceScorer({"yes": [[3]], "no": [[7]]})
    assert scorer.max_num_forced_tokens == 0
    logits = fake_logits("p", ())
    scorer.feed(logits)
    assert scorer.is_done
    expected = log_softmax(logits)
    assert scorer.logprobs == pytest.approx({"yes": expected[3], "no": expected[7]})


def test_multi_token_answers_sum_their_tokens_in_one_trie_walk() -> None:
    answers = {"retrieve": [5, 2, 9], "reply": [5, 2, 4], "calculate": [1, 8], "stop": [6]}
    scorer = ChoiceScorer({a: [tokens] for a, tokens in answers.items()})
    asked = drive(scorer, "prompt")
    # Every proper prefix of every answer once: (), (1,), (5,), (5, 2).
    assert asked == [(), (1,), (5,), (5, 2)]
    assert scorer.max_num_forced_tokens == 2
    for answer, tokens in answers.items():
        assert scorer.logprobs[answer] == pytest.approx(brute_logprob("prompt", tokens))


def test_an_answer_is_as_likely_as_all_its_surface_forms() -> None:
    assert surface_forms("yes") == ["yes", "Yes"]
    assert surface_forms("Stop") == ["Stop"]
    # "yes" as [3] or as "Yes" [4, 9]; "no" as [7] or [8]: forms share the trie walk.
    scorer = ChoiceScorer({"yes": [[3], [4, 9]], "no": [[7], [8]]})
    asked = drive(scorer, "p")
    assert asked == [(), (4,)]
    expected_yes = np.logaddexp(brute_logprob("p", [3]), brute_logprob("p", [4, 9]))
    expected_no = np.logaddexp(brute_logprob("p", [7]), brute_logprob("p", [8]))
    assert scorer.logprobs == pytest.approx({"yes": expected_yes, "no": expected_no})


def test_calibration_removes_an_answer_bias_the_prompt_does_not_change() -> None:
    # The raw model prefers "yes" by 2 nats on every prompt; this prompt moves "no" up
    # by 0.5 relative to the content-free prompt, so calibrated, "no" wins.
    logprobs = {"yes": -0.4, "no": -2.4}
    prior = {"yes": -0.2, "no": -2.7}
    raw = calibrated_scores(["yes", "no"], logprobs, None)
    assert decide(raw) == "yes"
    scores = calibrated_scores(["yes", "no"], logprobs, prior)
    assert scores["yes"]["calibrated"] == pytest.approx(-0.2)
    assert scores["no"]["calibrated"] == pytest.approx(0.3)
    assert decide(scores) == "no"
    assert scores["no"] == {"logprob": -2.4, "prior": -2.7, "bias": 0.0, "calibrated": 0.3}


def test_bias_shifts_the_threshold() -> None:
    logprobs, prior = {"yes": -1.0, "no": -1.2}, {"yes": -1.0, "no": -1.0}
    assert decide(calibrated_scores(["yes", "no"], logprobs, prior)) == "yes"
    biased = calibrated_scores(["yes", "no"], logprobs, prior, {"no": 0.5})
    assert biased["no"]["calibrated"] == pytest.approx(0.3)
    assert decide(biased) == "no"


def test_a_tie_goes_to_the_earlier_answer() -> None:
    scores = calibrated_scores(["no", "yes"], {"yes": -1.0, "no": -1.0}, None)
    assert decide(scores) == "no"


def test_calibrated_decisions_follow_the_fake_lm_end_to_end() -> None:
    answers = {"yes": [3, 11], "no": [7]}
    prompt, content_free = "Question: Q?\nReply:", "Question: N/A\nReply:"
    forms = {a: [tokens] for a, tokens in answers.items()}
    judged, prior = ChoiceScorer(forms), ChoiceScorer(forms)
    drive(judged, prompt)
    drive(prior, content_free)
    scores = calibrated_scores(list(answers), judged.logprobs, prior.logprobs)
    expected = {
        a: brute_logprob(prompt, t) - brute_logprob(content_free, t) for a, t in answers.items()
    }
    assert {a: s["calibrated"] for a, s in scores.items()} == pytest.approx(expected, abs=1e-4)
    assert decide(scores) == max(expected, key=lambda a: expected[a])


def test_bad_input_is_refused_with_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="at least one token"):
        ChoiceScorer({"yes": [[3]], "": [[]]})
    scorer = ChoiceScorer({"yes": [[3]]})
    scorer.feed(np.zeros(NUM_VOCAB))
    with pytest.raises(ValueError, match="already scored"):
        scorer.feed(np.zeros(NUM_VOCAB))
    with pytest.raises(ValueError, match="'maybe', which is not one of"):
        check_bias({"maybe": 1.0}, ["yes", "no"], "judge 'j'")
    with pytest.raises(ValueError, match="bias values must be numbers"):
        check_bias({"yes": "high"}, ["yes", "no"], "judge 'j'")  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="no answers"):
        decide({})
