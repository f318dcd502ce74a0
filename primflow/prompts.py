"""Rendering port values into prompt text.

Prompt templates use ``{name}`` placeholders, each bound to an input port of the LLM
node. Values render by type: text as is, a list of strings one per line, hits as
numbered passages with their source, ``None`` (a skipped optional input) as "".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from primflow.graph.ops import placeholders
from primflow.values import Chunk, Hit


def render_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Hit):
        return value.chunk.text
    if isinstance(value, Chunk):
        return value.text
    if isinstance(value, list | tuple):
        if value and all(isinstance(v, Hit | Chunk) for v in value):
            return "\n".join(f"[{i + 1}] {render_value(v)}" for i, v in enumerate(value))
        return "\n".join(render_value(v) for v in value)
    return str(value)


def render(template: str, values: Mapping[str, Any]) -> str:
    """Fill ``template``; a missing placeholder raises KeyError naming it."""
    missing = [name for name in placeholders(template) if name not in values]
    if missing:
        raise KeyError(f"prompt template needs {', '.join(missing)} but got none for them")
    return template.format_map({k: render_value(v) for k, v in values.items()})
