"""Fitting a judge's setting on the cases bench/bench_judge.py measured, and scoring the
fit left-one-out (each case judged with what was fitted on the other cases).

- ``threshold_fit``: the bias on "yes" over the calibrated yes-no margins.
- ``selection_fit``: the whole choice of a setting (prompt wording; grammar, calibrated,
  plain log-probability, or calibrated with a fitted bias) made on the other cases, so
  picking the best of many settings on the same few cases is scored honestly too.
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

Margins = list[tuple[float, bool]]  # (yes-no margin, whether "yes" is right)


def fit(margins: Margins) -> float:
    """The threshold with the most right decisions: the midpoint of the best gap
    between sorted margins (or just past either end)."""
    cuts = sorted(m for m, _ in margins)
    candidates = [cuts[0] - 1.0] + [(a + b) / 2 for a, b in itertools.pairwise(cuts)]
    candidates.append(cuts[-1] + 1.0)
    return max(candidates, key=lambda t: sum((m > t) == is_yes for m, is_yes in margins))


def threshold_fit(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The bias on "yes" that maximizes the right decisions, in-sample and left-one-out."""
    margins = [(r["margin"], r["expected"] == "yes") for r in rows]
    threshold = fit(margins)
    num_loo_right = sum(
        (m > fit(margins[:i] + margins[i + 1 :])) == is_yes for i, (m, is_yes) in enumerate(margins)
    )
    return {
        "fitted_yes_bias": round(-threshold, 3),
        "num_right_fitted": sum((m > threshold) == is_yes for m, is_yes in margins),
        "num_right_leave_one_out": num_loo_right,
    }


def settings_of(results: dict[str, Any], judge: str) -> dict[str, list[dict[str, Any]]]:
    """``<wording>/<mode>`` -> its rows (one per case, in the same order in every run)."""
    prefix = f"{judge}/"
    return {
        key.removeprefix(prefix): found["cases"]
        for key, found in results.items()
        if key.startswith(prefix) and "cases" in found
    }


def _says_yes(setting: str, rows: list[dict[str, Any]], train: list[int], i: int) -> bool:
    mode = setting.rsplit("/", 1)[1]
    if mode == "bias":
        threshold = fit([(rows[j]["margin"], rows[j]["expected"] == "yes") for j in train])
        return bool(rows[i]["margin"] > threshold)
    return bool(rows[i]["logprob_decision" if mode == "logprob" else "decision"] == "yes")


def _expanded(settings: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Every setting a calibrated run also measures: its log-probability argmax and its
    fitted bias (after the parameter-free ones, so a tie picks the simpler)."""
    found = dict(settings)
    calibrated = {k.rsplit("/", 1)[0]: rows for k, rows in settings.items() if "/calibrated" in k}
    found |= {f"{wording}/logprob": rows for wording, rows in calibrated.items()}
    found |= {f"{wording}/bias": rows for wording, rows in calibrated.items()}
    return found


def selection_fit(results: dict[str, Any], judge: str) -> dict[str, Any]:
    """Per case, the setting with the most right decisions on the other cases (a bias
    fitted on them), then that setting's decision on the case."""
    settings = _expanded(settings_of(results, judge))
    num_cases = len(next(iter(settings.values())))
    chosen, num_right = [], 0
    for i in range(num_cases):
        train = [j for j in range(num_cases) if j != i]

        def score(setting: str, train: list[int] = train) -> int:
            rows = settings[setting]
            return sum(
                _says_yes(setting, rows, train, j) == (rows[j]["expected"] == "yes") for j in train
            )

        best = max(settings, key=score)
        rows = settings[best]
        num_right += _says_yes(best, rows, train, i) == (rows[i]["expected"] == "yes")
        chosen.append(best)
    return {
        "num_right_leave_one_out": num_right,
        "num_cases": num_cases,
        "chosen": dict(Counter(chosen).most_common()),
    }
