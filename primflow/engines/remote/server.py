"""Startup checks of a remote server: it answers, and it serves the configured model.

A wrong URL or model name must fail when the stack starts, naming the engine, the URL
and (for a model) the names the server does serve, not at the first query.
"""

from __future__ import annotations

from typing import Any

from primflow.engines.base import EngineError
from primflow.engines.remote.http import RemoteClient, RemoteError

MODELS_PATH = "/v1/models"


async def served_models(client: RemoteClient, engine: str) -> list[str]:
    try:
        listing: Any = await client.get_json(MODELS_PATH)
    except RemoteError as err:
        raise EngineError(engine, "<start>", f"the server does not answer: {err}") from err
    data = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(data, list):
        url = client.url(MODELS_PATH)
        raise EngineError(engine, "<start>", f"{url}: not an OpenAI model list: {listing!r}")
    return [str(m.get("id")) for m in data if isinstance(m, dict)]


async def check_model(client: RemoteClient, engine: str, model: str) -> None:
    names = await served_models(client, engine)
    if model not in names:
        raise EngineError(
            engine,
            "<start>",
            f"{client.url(MODELS_PATH)} does not serve model {model!r} (it serves: "
            f"{', '.join(names) or 'nothing'})",
        )
