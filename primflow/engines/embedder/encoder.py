"""Sentence embeddings with all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime: texts -> unit vectors.

Owns tokenization, sub-batching and pooling. Invariants:

- Output rows are L2-normalized float32 vectors of ``DIM`` (384), in input order, so an
  inner product is a cosine similarity. Empty input gives a ``(0, DIM)`` array.
- Texts are sorted by token length and run in sub-batches of ``sub_batch_size`` (≈32),
  each padded only to its own longest text: unsorted batches of 64 were 2× slower here
  for the same embeddings (measured on the 2-core reference machine).
- One ORT session per thread count (an ORT session's thread count is fixed), created on
  first use; ``encode(texts, num_threads)`` picks one, so a core budget can switch
  between 1 and 2 threads between sub-batches. Each sub-batch runs inside
  ``thread_lease()`` (if given), so a long encode follows the budget as other engines
  wake up and never runs beside a unit that already holds the cores.
- Sessions never spin while idle, so idle ORT threads never steal cores from the LLM
  (placement.md). A multi-thread session spins *within* a run and stops at its end
  (``force_spinning_stop``): it runs only inside a lease on all its cores, and spinning
  there made 650 passages 2 % faster than no spinning at all (2.41 vs 2.46 s, 5 of 5
  pairs; docs/results/parity.md), with no CPU burnt after the run (0.000 s in 0.5 s,
  against 0.034 s with ORT's default spinning). A 1-thread session has no pool threads.
- Side effect outside the project: onnxruntime 1.32 writes
  ``~/.cache/Microsoft/DeveloperTools/.onnxruntime/`` (device id + a small db) when a
  session is created; no option turns it off.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import numpy as np
import numpy.typing as npt

from primflow.engines.embedder.model_files import onnx_model_path, tokenizer_path

DIM = 384
MAX_NUM_TOKENS = 256  # the model's max_seq_length (sentence-transformers config)
SUB_BATCH_SIZE = 32

Vectors = npt.NDArray[np.float32]


class MiniLMEncoder:
    def __init__(
        self,
        model_path: Path | None = None,
        tokenizer_file: Path | None = None,
        sub_batch_size: int = SUB_BATCH_SIZE,
        max_num_threads: int | None = None,
    ) -> None:
        from tokenizers import Tokenizer

        self.model_path = model_path or onnx_model_path()
        self.sub_batch_size = sub_batch_size
        self.max_num_threads = max_num_threads or os.cpu_count() or 1
        self.dim = DIM
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file or tokenizer_path()))
        # The shipped tokenizer pads every text to 128; pad per sub-batch instead.
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=MAX_NUM_TOKENS)
        self._sessions: dict[int, object] = {}
        self._sessions_lock = threading.Lock()

    def warm_up(self, thread_counts: Sequence[int] = (1, 2)) -> None:
        for num_threads in thread_counts:
            self.encode(["warm up"], num_threads=num_threads)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(e.ids) for e in self._tokenizer.encode_batch(list(texts))]

    def encode(
        self,
        texts: Sequence[str],
        num_threads: int = 0,
        thread_lease: Callable[[], AbstractContextManager[int]] | None = None,
    ) -> Vectors:
        """Embed ``texts``; ``num_threads`` 0 means all cores."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.sub_batch_size):
            rows = order[start : start + self.sub_batch_size]
            with thread_lease() if thread_lease is not None else nullcontext(num_threads) as n:
                out[rows] = self._run([encodings[i] for i in rows], n)
        return out

    def _run(self, encodings: list, num_threads: int) -> Vectors:  # type: ignore[type-arg]
        max_len = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), max_len), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        session = self._session(num_threads)
        (hidden,) = session.run(["last_hidden_state"], feeds)  # type: ignore[attr-defined]
        hidden = np.asarray(hidden, dtype=np.float32)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: Vectors = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit

    def _session(self, num_threads: int) -> object:
        num_threads = min(max(num_threads, 0), self.max_num_threads) or self.max_num_threads
        with self._sessions_lock:
            session = self._sessions.get(num_threads)
            if session is None:
                session = self._sessions[num_threads] = self._new_session(num_threads)
            return session

    def _new_session(self, num_threads: int) -> object:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        for key, value in spinning_config(num_threads).items():
            options.add_session_config_entry(key, value)
        options.log_severity_level = 3
        return ort.InferenceSession(
            str(self.model_path), options, providers=["CPUExecutionProvider"]
        )


def spinning_config(num_threads: int) -> dict[str, str]:
    """ORT session config entries for spinning (see the module doc)."""
    is_spinning = "1" if num_threads > 1 else "0"
    return {
        "session.intra_op.allow_spinning": is_spinning,
        "session.inter_op.allow_spinning": "0",  # one inter-op thread: nothing to spin
        "session.force_spinning_stop": "1",  # threads stop spinning when a run ends
    }


_shared_encoder: MiniLMEncoder | None = None
_shared_lock = threading.Lock()


def shared_encoder() -> MiniLMEncoder:
    """One encoder per process, shared by the embedder and the cosine reranker."""
    global _shared_encoder
    with _shared_lock:
        if _shared_encoder is None:
            _shared_encoder = MiniLMEncoder()
        return _shared_encoder
