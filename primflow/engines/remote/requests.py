"""Request bodies for a remote LLM: prompts, sampling, priority and constraints by dialect.

Invariants:

- ``chat`` prompts are ``[system?, user]`` messages rendered by the server's own chat
  template; ``completions`` prompts are plain text (``system`` + blank line + content),
  so a warm-up sends the exact text prefix of the full prompt. In both, the full prompt
  starts with the warm-up's prompt up to where the content was cut, which is what the
  server's prefix cache matches.
- A warm-up asks for one token and is never shown: its text is dropped, it carries the
  ``user`` tag :data:`WARMUP_TAG`, and it is never streamed.
- A JSON constraint (a ``json_schema`` param, or a ``json_list`` / ``json_object``
  parser with ``num_items``) is pushed down in the dialect's own field; a dialect
  without one decodes unconstrained and the incremental parser copes.
  A GBNF server is handed a JSON schema to convert itself where it takes one, so a
  remote-only install never needs llama-cpp-python.
- A constrained choice (``choices``) goes out as a GBNF grammar, vLLM's
  ``guided_choice`` or SGLang's ``regex``, so the answer is exactly one of the choices;
  Ollama and OpenAI endpoints have no such field and answer unconstrained (the
  condition then reads the answer's first word, runtime/inline_ops.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from primflow.engines.llm import grammar as gbnf
from primflow.engines.remote.dialects import (
    ChoiceField,
    Dialect,
    GrammarField,
    SchemaField,
    server_priority,
)
from primflow.graph.ops import DecodeParser

WARMUP_TAG = "primflow-warmup"
CHAT = "chat"
COMPLETIONS = "completions"
PATHS = {CHAT: "/v1/chat/completions", COMPLETIONS: "/v1/completions"}
DEFAULT_MAX_TOKENS = 256


def prompt_fields(api: str, system: str | None, content: str) -> dict[str, Any]:
    if api == CHAT:
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": content})
        return {"messages": messages}
    return {"prompt": f"{system}\n\n{content}" if system else content}


def warmup_body(
    model: str, api: str, dialect: Dialect, system: str | None, content: str, rank_s: float
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        **prompt_fields(api, system, content),
        "max_tokens": 1,
        "temperature": 0.0,
        "stream": False,
        "user": WARMUP_TAG,
        **dict(dialect.extra_fields),
    }
    _add_priority(body, dialect, rank_s)
    return body


def decode_body(
    model: str,
    api: str,
    dialect: Dialect,
    system: str | None,
    content: str,
    params: Mapping[str, Any],
    rank_s: float,
) -> dict[str, Any]:
    """A streamed generation request for a decode node's ``params``."""
    max_tokens = int(params.get("max_tokens", DEFAULT_MAX_TOKENS))
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    body: dict[str, Any] = {
        "model": model,
        **prompt_fields(api, system, content),
        "max_tokens": max_tokens,
        "temperature": float(params.get("temperature", 0.0)),
        "top_p": float(params.get("top_p", 1.0)),
        "stream": True,
        **dict(dialect.extra_fields),
    }
    if "seed" in params:
        body["seed"] = int(params["seed"])
    if int(params.get("top_k", 0)) > 0:
        if not dialect.has_top_k:
            raise ValueError(f"the {dialect.name} dialect takes no top_k; use top_p instead")
        body["top_k"] = int(params["top_k"])
    stop = params.get("stop")
    if stop:
        body["stop"] = [stop] if isinstance(stop, str) else [str(s) for s in stop]
    if api == CHAT:
        body["stream_options"] = {"include_usage": True}
    _add_priority(body, dialect, rank_s)
    _add_ignore_eos(body, dialect, params, max_tokens)
    _add_constraint(body, dialect, api, params, max_tokens)
    return body


def _add_priority(body: dict[str, Any], dialect: Dialect, rank_s: float) -> None:
    priority = server_priority(dialect, rank_s)
    if priority is not None:
        body["priority"] = priority


def _add_ignore_eos(
    body: dict[str, Any], dialect: Dialect, params: Mapping[str, Any], max_tokens: int
) -> None:
    if not params.get("ignore_eos", False):
        return
    if dialect.ignore_eos_field is not None:
        body[dialect.ignore_eos_field] = True
    else:
        body["min_tokens"] = max_tokens  # llama-cpp-python, Ollama: no ignore_eos field


def json_schema_for(params: Mapping[str, Any], max_tokens: int) -> dict[str, Any] | None:
    """The JSON schema a decode's params ask for (the same rules as grammar.py), or None."""
    schema = params.get("json_schema")
    if schema:
        return dict(json.loads(schema) if isinstance(schema, str) else schema)
    parser, num_items = params.get("parser"), params.get("num_items")
    if not parser or not num_items or not params.get("constrain", True):
        return None
    num = int(num_items)
    max_chars = gbnf.item_char_budget(
        max_tokens, num, int(params.get("max_item_chars", gbnf.MAX_ITEM_CHARS))
    )
    item = {"type": "string", "minLength": 1, "maxLength": max_chars}
    if parser == DecodeParser.JSON_LIST:
        return {"type": "array", "items": item, "minItems": num, "maxItems": num}
    if parser == DecodeParser.JSON_OBJECT:
        return {
            "type": "object",
            "additionalProperties": item,
            "minProperties": num,
            "maxProperties": num,
        }
    return None


def _add_constraint(
    body: dict[str, Any], dialect: Dialect, api: str, params: Mapping[str, Any], max_tokens: int
) -> None:
    choices = params.get("choices")
    if choices and dialect.grammar is not GrammarField.GBNF:
        _add_choice(body, dialect, [str(c) for c in choices])
        return
    if dialect.grammar is GrammarField.GBNF:
        _add_gbnf(body, dialect, api, params, max_tokens)
        return
    schema = json_schema_for(params, max_tokens)
    if schema is None:
        return
    if dialect.grammar is GrammarField.GUIDED_JSON:
        body["guided_json"] = schema
    elif dialect.grammar is GrammarField.RESPONSE_FORMAT and api == CHAT:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "primflow_items", "schema": schema},
        }


def _add_choice(body: dict[str, Any], dialect: Dialect, choices: list[str]) -> None:
    if not choices or any(not c for c in choices):
        raise ValueError(f"choices must be non-empty strings, got {choices!r}")
    if dialect.choice_field is ChoiceField.GUIDED_CHOICE:
        body["guided_choice"] = choices
    elif dialect.choice_field is ChoiceField.REGEX:
        body["regex"] = "(" + "|".join(re.escape(c) for c in choices) + ")"


def _add_gbnf(
    body: dict[str, Any], dialect: Dialect, api: str, params: Mapping[str, Any], max_tokens: int
) -> None:
    """A GBNF server: a JSON schema goes to the server to convert where it takes one;
    the parsers' own grammars (json_list / json_object) are written here."""
    schema = params.get("json_schema")
    if not schema:
        grammar = gbnf.decode_grammar(params, max_tokens)
        if grammar is not None:
            body["grammar"] = grammar
        return
    parsed = dict(json.loads(schema) if isinstance(schema, str) else schema)
    if dialect.schema_field is SchemaField.JSON_SCHEMA:
        body["json_schema"] = parsed
    elif dialect.schema_field is SchemaField.JSON_OBJECT and api == CHAT:
        body["response_format"] = {"type": "json_object", "schema": parsed}
    else:
        body["grammar"] = _converted_here(parsed, dialect)


def _converted_here(schema: dict[str, Any], dialect: Dialect) -> str:
    try:
        return gbnf.schema_grammar(schema)
    except ImportError:
        raise ValueError(
            f"a json_schema constraint for a {dialect.name} server on the completions API "
            "is converted to GBNF here, which needs llama-cpp-python installed; use "
            "api: chat (the server converts it) or install the engines extra"
        ) from None
