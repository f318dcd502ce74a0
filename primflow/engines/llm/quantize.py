"""Requantized copies of GGUF models, made once and cached on disk outside the repo.

``LlamaConfig(quantization="q4_0")`` serves a Q4_0 conversion of the model: llama.cpp
has repacked AVX kernels for Q4_0 (none for the shipped Q4_1), so batched steps get
much cheaper (docs/results/llm-engine.md). Invariants:

- The copy lives in ``$PRIMFLOW_CACHE_DIR`` (default ``$XDG_CACHE_HOME/primflow`` or
  ``~/.cache/primflow``) under ``models/``, named by the source file's SHA-256 and the
  target type, so a changed source never reuses a stale copy.
- A copy appears atomically (written to a temporary name, then renamed): a crash or a
  concurrent process never leaves a half-written model under the final name.
- Call on the llama thread (thread.py): ``llama_model_quantize`` is a llama call.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import llama_cpp as lc

QUANTIZATIONS = {"q4_0": lc.LLAMA_FTYPE_MOSTLY_Q4_0}
_HASH_CHUNK_BYTES = 1 << 20


def cache_dir() -> Path:
    if explicit := os.environ.get("PRIMFLOW_CACHE_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "primflow"


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def requantized(src: str, quantization: str) -> str:
    """Path of ``src`` converted to ``quantization``; converts on first use (~0.3 s for
    SmolLM2-135M)."""
    if quantization not in QUANTIZATIONS:
        known = ", ".join(sorted(QUANTIZATIONS))
        raise ValueError(f"unknown LLM quantization {quantization!r} (known: {known})")
    models = cache_dir() / "models"
    dst = models / f"{Path(src).stem}-{file_sha256(src)[:16]}-{quantization}.gguf"
    if dst.is_file():
        return str(dst)
    models.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=models, prefix=f".{dst.stem}-", suffix=".tmp")
    os.close(fd)
    try:
        params = lc.llama_model_quantize_default_params()
        params.ftype = QUANTIZATIONS[quantization]
        params.allow_requantize = True  # the source is already quantized (Q4_1)
        status = lc.llama_model_quantize(src.encode(), tmp.encode(), params)
        if status != 0:
            raise ValueError(f"llama.cpp could not convert {src!r} to {quantization}")
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return str(dst)
