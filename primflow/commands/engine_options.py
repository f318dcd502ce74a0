"""The engine options `primflow run`, `bench`, `profile` and `serve` share, defined once.

Owns the argparse definitions of ``--placement``, ``--cores``, ``--max-tokens``,
``--profiles``, the model files (``--llm-model``, ``--embed-model``), the per-query
sampling flags of `primflow run` (``--temperature``, ``--top-p``, ``--sample-top-k``,
``--seed``, ``--stop``), and their checks (:func:`check_engine_options`,
:func:`check_model_options`), so every command takes and validates them the same way.
Invariant: the checks need no model loaded and fail with an :class:`OptionError`
naming the flag; a model file that passes them is checked again by its engine at start.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from primflow.session.factories import EmbeddedSettings

PLACEMENT_CHOICES = ("shared", "dedicated")
# Flag -> QueryConfig field of the per-query sampling flags.
SAMPLING_FLAGS = {
    "--temperature": "temperature",
    "--top-p": "top_p",
    "--sample-top-k": "sample_top_k",
    "--seed": "seed",
    "--stop": "stop",
}


class OptionError(ValueError):
    """An engine option is unusable; the message names the option and why."""


def add_engine_options(
    parser: argparse.ArgumentParser, placement_default: str | None = "shared"
) -> None:
    """``placement_default=None`` lets a caller tell "not given" from "shared"."""
    parser.add_argument(
        "--placement",
        choices=PLACEMENT_CHOICES,
        default=placement_default,
        help="cores: shared by the busy engines (default), or one per engine",
    )
    parser.add_argument(
        "--cores",
        type=int,
        help="cores the engines may use (default: all); 1 keeps every engine at one thread, "
        "which avoids multi-second stalls when other processes load the machine",
    )
    parser.add_argument("--max-tokens", type=int, help="answer length limit (tokens)")
    parser.add_argument(
        "--profiles", type=Path, help="engine latency profiles saved by `primflow profile`"
    )
    add_model_options(parser)


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--llm-model PATH.gguf`` and ``--embed-model DIR`` (default: the shipped models)."""
    parser.add_argument(
        "--llm-model",
        type=Path,
        help="a GGUF model file for the LLM engines (default: the shipped "
        "SmolLM2-135M-Instruct); its chat template comes from the file",
    )
    parser.add_argument(
        "--embed-model",
        type=Path,
        help="an ONNX embedding model folder (model.onnx and tokenizer.json) for the "
        "embedder and reranker (default: the shipped all-MiniLM-L6-v2)",
    )


def add_sampling_options(parser: argparse.ArgumentParser) -> None:
    """Per-query sampling of the answer, as in the OpenAI API (greedy by default)."""
    parser.add_argument(
        "--temperature", type=float, help="sampling temperature, 0-2 (default 0: greedy)"
    )
    parser.add_argument("--top-p", type=float, help="nucleus sampling, (0, 1] (default 1)")
    parser.add_argument(
        "--sample-top-k",
        type=int,
        help="sample among the k likeliest tokens (default 0: all; --top-k is not this)",
    )
    parser.add_argument(
        "--seed", type=int, help="sampler seed: the same seed gives the same answer"
    )
    parser.add_argument(
        "--stop",
        action="append",
        help="a stop string: the answer ends before it (repeatable, at most 4)",
    )


def add_engines_option(parser: argparse.ArgumentParser) -> None:
    """``--engines FILE``: the engine stack file (remote servers, embedded engines)."""
    parser.add_argument(
        "--engines",
        type=Path,
        metavar="FILE",
        help="a YAML engine stack: which engines run on OpenAI-compatible servers "
        "(docs/guide/remote-engines.md); engines it does not list run embedded",
    )


def check_engine_options(args: argparse.Namespace) -> dict[str, Any]:
    """Raise OptionError for a bad value; return the per-query config changes they set."""
    changes: dict[str, Any] = {}
    if args.max_tokens is not None:
        if args.max_tokens < 1:
            raise OptionError(f"--max-tokens must be >= 1, got {args.max_tokens}")
        changes["max_tokens"] = args.max_tokens
    if args.cores is not None and args.cores < 1:
        raise OptionError(f"--cores must be >= 1, got {args.cores}")
    if args.profiles is not None and not Path(args.profiles).is_file():
        raise OptionError(f"profiles file {str(args.profiles)!r} does not exist")
    check_model_options(args)
    changes.update(sampling_changes(args))
    return changes


def sampling_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The sampling flags given, as QueryConfig changes, validated (OptionError names
    the flag)."""
    from pydantic import ValidationError

    from primflow.api.config import QueryConfig

    changes = {
        field: getattr(args, field)
        for field in SAMPLING_FLAGS.values()
        if getattr(args, field, None) is not None
    }
    if not changes:
        return changes
    try:
        QueryConfig().with_changes(**changes)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        flag = next((f for f, name in SAMPLING_FLAGS.items() if name == field), field)
        raise OptionError(f"{flag}: {error['msg']}") from None
    return changes


def check_model_options(args: argparse.Namespace) -> None:
    """``--llm-model`` must be a GGUF file, ``--embed-model`` a model folder."""
    from primflow.engines.model_paths import ModelPathError, check_embed_model, check_llm_model

    try:
        if getattr(args, "llm_model", None) is not None:
            check_llm_model(args.llm_model)
        if getattr(args, "embed_model", None) is not None:
            check_embed_model(args.embed_model)
    except ModelPathError as exc:
        flag = "--llm-model" if exc.kind == "llm" else "--embed-model"
        raise OptionError(f"{flag}: {exc}") from None


def embedded_settings(args: argparse.Namespace, **changes: Any) -> EmbeddedSettings:
    """The embedded engines' settings the model flags choose (``changes`` on top)."""
    from primflow.session.factories import EmbeddedSettings

    llm_model = getattr(args, "llm_model", None)
    embed_model = getattr(args, "embed_model", None)
    return EmbeddedSettings(
        llm_model_path=str(llm_model) if llm_model is not None else None,
        embed_model_dir=Path(embed_model) if embed_model is not None else None,
        **changes,
    )
