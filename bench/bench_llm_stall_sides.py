"""The pieces of bench_llm_stall.py: the raw ``create_chat_completion`` side (a spawned
process, timing every token), the engine's step recorder, and the outside load.

- Raw side: ``Llama.create_chat_completion`` one request at a time, flash attention off
  (``Llama``'s default) and on, in one spawned process (two OpenMP llama.cpp callers in
  one process slow each other down: docs/results/llm-engine.md). A logits processor
  stamps every sampled token, so a request splits into its prefill (start to first
  token) and its decode steps (token to token), with the KV length of each.
- Engine side: ``StepRecorder`` wraps ``LlamaRunner.decode`` (the one ``llama_decode``
  of an engine step) in this process and files each step's wall time, rows and KV end
  under the variant running at the time (requests run one at a time, so every step
  belongs to the variant in progress).
- Outside load: ``OutsideLoad`` starts processes that busy-loop on one core each
  (pinned to a core, or left to the scheduler) and stops them on exit.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import bench_parity_raw as raw

from primflow.engines.llm.runner import Chunk, LlamaRunner

# --- the raw side (runs in the spawned process) ---

_chats: dict[str, Any] = {}


@dataclass(frozen=True, slots=True)
class Step:
    """One ``llama_decode``: ``rows`` query rows, KV positions up to ``kv_end``."""

    rows: int
    kv_end: int
    seconds: float


class TimedChat(raw.PlainChat):
    """``raw.PlainChat`` with flash attention chosen, stamping every sampled token."""

    def __init__(self, model_path: str, num_threads: int, flash_attn: bool) -> None:
        import llama_cpp as lc

        self.llm = lc.Llama(
            model_path=model_path,
            n_ctx=4096,
            n_threads=num_threads,
            flash_attn=flash_attn,
            verbose=False,
        )
        vocab = lc.llama_model_get_vocab(self.llm._model.model)
        num_vocab = int(lc.llama_vocab_n_tokens(vocab))
        self.eog_tokens = [t for t in range(num_vocab) if lc.llama_vocab_is_eog(vocab, t)]

    def timed(self, prompt: str, max_tokens: int) -> tuple[float, list[Step]]:
        """One request: its wall time and its steps (the prefill, then each decode)."""
        import llama_cpp as lc

        stamps: list[tuple[float, int]] = []
        eog_tokens = self.eog_tokens

        def stamp(input_ids: Any, scores: Any) -> Any:
            """Stamps the token and masks end-of-generation (``raw.PlainChat``'s
            ``logit_bias``: llama-cpp-python 0.3.36 drops a ``logit_bias`` given together
            with a ``logits_processor``, ``list.extend`` returning None)."""
            stamps.append((time.perf_counter(), len(input_ids)))
            masked = scores.copy()
            masked[eog_tokens] -= 1e9
            return masked

        self.llm.reset()  # no prompt reuse from the previous call, as in the parity bench
        started_s = time.perf_counter()
        self.llm.create_chat_completion(
            [{"role": "user", "content": prompt}],
            max_tokens=max_tokens,
            temperature=0.0,
            logits_processor=lc.LogitsProcessorList([stamp]),
        )
        seconds = time.perf_counter() - started_s
        steps = []
        previous_s = started_s
        for i, (at_s, kv_end) in enumerate(stamps):
            rows = kv_end if i == 0 else 1  # the first stamp follows the whole prompt
            steps.append(Step(rows, kv_end, at_s - previous_s))
            previous_s = at_s
        return seconds, steps


def load_raw(model_path: str, num_threads: int) -> None:
    for name, flash_attn in (("raw_fa_off", False), ("raw_fa_on", True)):
        _chats[name] = TimedChat(model_path, num_threads, flash_attn)
        _chats[name].timed("Say hi.", 4)


def timed_raw(name: str, prompts: Sequence[str], max_tokens: int) -> list[tuple[float, list[Step]]]:
    """Each prompt one at a time on the raw chat ``name``."""
    return [_chats[name].timed(p, max_tokens) for p in prompts]


# --- the engine side ---


@dataclass(slots=True)
class StepRecorder:
    """Files every engine ``llama_decode`` under ``label`` (None: not recorded)."""

    label: str | None = None
    steps: dict[str, list[Step]] = field(default_factory=dict)

    def install(self) -> Callable[[], None]:
        """Wrap ``LlamaRunner.decode``; returns the function that restores it."""
        original = LlamaRunner.decode
        recorder = self

        def timed(runner: LlamaRunner, chunks: Sequence[Chunk]) -> Any:
            started_s = time.perf_counter()
            try:
                return original(runner, chunks)
            finally:
                label = recorder.label
                if label is not None:
                    rows = sum(len(c.tokens) for c in chunks)
                    kv_end = max(c.start_pos + len(c.tokens) for c in chunks)
                    step = Step(rows, kv_end, time.perf_counter() - started_s)
                    recorder.steps.setdefault(label, []).append(step)

        LlamaRunner.decode = timed  # type: ignore[method-assign]

        def restore() -> None:
            LlamaRunner.decode = original  # type: ignore[method-assign]

        return restore


# --- the outside load ---


# A busy loop in its own interpreter (argv[1]: the core to pin it to, "-" for none).
_SPIN = (
    "import os, sys\n"
    "if sys.argv[1] != '-':\n"
    "    os.sched_setaffinity(0, {int(sys.argv[1])})\n"
    "while True:\n"
    "    pass\n"
)

# Named loads: the cores each spinner is pinned to (None: the scheduler places it).
LOADS: dict[str, tuple[int | None, ...]] = {
    "none": (),
    "spin": (None,),
    "pinned": (1,),
    "spin2": (None, None),
}


class OutsideLoad:
    """``with OutsideLoad("spin"):`` one process busy-looping on a core meanwhile."""

    def __init__(self, name: str) -> None:
        self.cores = LOADS[name]
        self._procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> OutsideLoad:
        for core in self.cores:
            where = "-" if core is None else str(core)
            self._procs.append(subprocess.Popen([sys.executable, "-c", _SPIN, where]))
        if self._procs:
            time.sleep(0.3)  # the interpreters are up and spinning
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for proc in self._procs:
            proc.terminate()
        for proc in self._procs:
            proc.wait(timeout=5)
        self._procs.clear()
