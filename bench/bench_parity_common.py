"""Inputs and statistics of the parity benchmark (bench_parity.py).

Passages are seeded spans of the sample corpus (``samples/docs``): real English text,
so their token counts are what documents give, with no download. Statistics are over
paired repeats: each repeat runs the raw loop and the engine on the same inputs, one
right after the other (the side that goes first alternates), and the speedup of a
repeat is raw_s / engine_s, so >= 1.0 means the engine is at least as fast.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def corpus_words() -> list[str]:
    """Every word of the sample documents, in order (Markdown marks dropped)."""
    words: list[str] = []
    for path in sorted((SAMPLES / "docs").iterdir()):
        text = re.sub(r"[#*`>|]", " ", path.read_text(encoding="utf-8"))
        words.extend(text.split())
    return words


def passages(seed: int, num: int, min_chars: int = 100, max_chars: int = 300) -> list[str]:
    """``num`` seeded passages of ``min_chars``-``max_chars`` characters: contiguous
    spans of the sample corpus, starting at random words (they wrap around its end)."""
    words = corpus_words()
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(num):
        target = int(rng.integers(min_chars, max_chars + 1))
        i = int(rng.integers(len(words)))
        text = words[i % len(words)]
        while len(text) < target:
            i += 1
            word = words[i % len(words)]
            if len(text) + 1 + len(word) > max_chars:
                break
            text += " " + word
        out.append(text)
    return out


def questions(num: int) -> list[str]:
    records = [
        line for line in (SAMPLES / "questions.jsonl").read_text().splitlines() if line.strip()
    ]
    import json

    found = [json.loads(line)["question"] for line in records]
    return [found[i % len(found)] for i in range(num)]


def paired_stats(raw_s: Sequence[float], engine_s: Sequence[float]) -> dict[str, Any]:
    """Medians, spreads and the per-repeat speedups raw/engine of paired runs."""
    speedups = [r / e for r, e in zip(raw_s, engine_s, strict=True)]
    return {
        "raw_median_s": statistics.median(raw_s),
        "engine_median_s": statistics.median(engine_s),
        "raw_range_s": [min(raw_s), max(raw_s)],
        "engine_range_s": [min(engine_s), max(engine_s)],
        "speedup_median": statistics.median(speedups),
        "speedup_range": [min(speedups), max(speedups)],
        "speedup_of_medians": statistics.median(raw_s) / statistics.median(engine_s),
        "raw_s": list(raw_s),
        "engine_s": list(engine_s),
    }


def summary(name: str, stats: dict[str, Any]) -> str:
    low, high = stats["speedup_range"]
    return (
        f"{name}: raw {stats['raw_median_s']:.3f}s, engine {stats['engine_median_s']:.3f}s, "
        f"speedup {stats['speedup_median']:.3f}x [{low:.3f}-{high:.3f}]"
    )
