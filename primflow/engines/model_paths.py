"""Checks of users' model files, cheap enough for a command line: no model is loaded.

Owns what counts as an LLM model file (a readable GGUF file: its first 4 bytes are
``GGUF``) and as an embedding model folder (``model.onnx``, or ``onnx/model.onnx``,
that looks like an ONNX protobuf, and a ``tokenizer.json`` beside it). Every failure is
a :class:`ModelPathError` naming the path and what is wrong with it. The engines run
the same checks when they start, so a stack built from Python fails as clearly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

GGUF_MAGIC = b"GGUF"
# An ONNX file is a ModelProto; protobuf writes its field 1 (ir_version, a varint) first.
ONNX_FIRST_BYTE = b"\x08"
ONNX_NAMES = ("model.onnx", "onnx/model.onnx")
TOKENIZER_NAME = "tokenizer.json"


class ModelPathError(ValueError):
    """A model path is unusable; ``kind`` is ``llm`` or ``embed``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def check_llm_model(path: str | Path) -> Path:
    """``path`` if it is a readable GGUF file, else a ModelPathError naming it."""
    file = Path(path)
    if not file.exists():
        raise ModelPathError("llm", f"LLM model file {str(path)!r} does not exist")
    if not file.is_file():
        raise ModelPathError("llm", f"LLM model {str(path)!r} is a folder, not a GGUF file")
    if not os.access(file, os.R_OK):
        raise ModelPathError("llm", f"LLM model file {str(path)!r} is not readable")
    with file.open("rb") as handle:
        magic = handle.read(4)
    if magic != GGUF_MAGIC:
        raise ModelPathError(
            "llm", f"LLM model file {str(path)!r} is not a GGUF file (it starts {magic!r})"
        )
    return file


@dataclass(frozen=True, slots=True)
class EmbedModelFiles:
    """The files of an embedding model folder."""

    folder: Path
    onnx: Path
    tokenizer: Path


def check_embed_model(folder: str | Path) -> EmbedModelFiles:
    """The model and tokenizer files of an embedding model folder, checked."""
    root = Path(folder)
    where = f"embedding model folder {str(folder)!r}"
    if not root.exists():
        raise ModelPathError("embed", f"{where} does not exist")
    if not root.is_dir():
        raise ModelPathError(
            "embed", f"{where} is a file; pass the folder holding model.onnx and tokenizer.json"
        )
    onnx = next((root / name for name in ONNX_NAMES if (root / name).is_file()), None)
    if onnx is None:
        raise ModelPathError("embed", f"{where} has no model.onnx (nor onnx/model.onnx)")
    with onnx.open("rb") as handle:
        first = handle.read(1)
    if first != ONNX_FIRST_BYTE:
        raise ModelPathError("embed", f"{str(onnx)!r} is not an ONNX model file")
    tokenizer = root / TOKENIZER_NAME
    if not tokenizer.is_file():
        raise ModelPathError("embed", f"{where} has no {TOKENIZER_NAME}")
    return EmbedModelFiles(root, onnx, tokenizer)
