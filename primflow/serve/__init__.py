"""`primflow serve`: applications behind an HTTP API on one embedded engine stack.

``create_app(settings)`` builds the FastAPI app (``app.py``); ``service.Service`` owns
the engine stack, the session every application runs on, admission and draining;
``runner.serve`` runs it under uvicorn with a draining SIGTERM/SIGINT handler. Routes
live one area per module (``routes_*.py``), request and response models in
``schemas.py``. Needs the ``serve`` extra (fastapi, uvicorn, prometheus-client).
"""

from primflow.serve.settings import ServeSettings

__all__ = ["ServeSettings"]
