"""What a server is started with: :class:`ServeSettings`, from flags and a config file.

Invariants: every limit is positive; ``host`` defaults to loopback so a server is
never reachable from elsewhere unless asked; the API key, when set, is never printed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENGINE_BACKENDS = ("embedded", "fake")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
API_KEY_ENV = "PRIMFLOW_API_KEY"


@dataclass(frozen=True)
class ServeSettings:
    apps: tuple[str, ...] = ("naive_rag",)
    imports: tuple[str, ...] = ()  # modules to import before loading specs (@function)
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    placement: str = "shared"
    num_cores: int | None = None
    profiles: Path | None = None
    config_changes: dict[str, Any] = field(default_factory=dict)  # server-wide query defaults
    # The engine stack file of `primflow run --engines FILE` (remote engines); None:
    # every engine embedded.
    engines_file: Path | None = None
    # The embedded engines' models (`--llm-model`, `--embed-model`, checked like run's);
    # None: the shipped SmolLM2-135M-Instruct and all-MiniLM-L6-v2.
    llm_model: Path | None = None
    embed_model: Path | None = None
    # "fake" (hidden --engine-backend): the model-free fakes of primflow.testing with
    # test controls under /_testing, for scheduling tests and trying the API.
    engine_backend: str = "embedded"
    collections_dir: Path | None = None  # None: the store's default root
    pgvector: str | None = None  # a DSN: the vector index, and new collections' backend
    fake_latency_scale: float = 0.01
    max_queued_queries: int = 64  # queued plus running, over all apps
    drain_timeout_s: float = 30.0
    api_key: str | None = None
    max_body_bytes: int = 1 << 20  # JSON request bodies
    max_upload_bytes: int = 32 << 20  # document uploads
    retry_after_s: int = 1  # the Retry-After of a 429

    def __post_init__(self) -> None:
        if self.engine_backend not in ENGINE_BACKENDS:
            raise ValueError(
                f"engine backend must be one of {ENGINE_BACKENDS}, got {self.engine_backend!r}"
            )
        if not self.apps:
            raise ValueError("serve at least one app")
        for name in ("max_queued_queries", "max_body_bytes", "max_upload_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.drain_timeout_s < 0:
            raise ValueError(f"drain_timeout_s must be >= 0, got {self.drain_timeout_s}")
        if not 0 <= self.port < 65536:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
