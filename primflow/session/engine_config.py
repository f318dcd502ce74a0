"""The engine stack from a YAML file: which engine runs embedded and which on a server.

```yaml
engines:
  llm:
    backend: openai            # an OpenAI-compatible server
    base_url: http://127.0.0.1:8000
    model: Qwen/Qwen2.5-7B-Instruct
    dialect: vllm              # vllm | sglang | llama_cpp | llama_cpp_python | ollama | openai
  embedder:
    backend: embedded          # the in-process engine
    model: models/bge-small    # optional: an ONNX model folder (LLM: a .gguf file)
  reranker:
    backend: ray               # the embedded engine, in Ray actors (the `ray` extra)
    num_instances: 2           # the engine scheduler balances them
    num_cpus: 1                # what each actor reserves: Ray places it by these
    resources: {rerank_node: 1}
    label_selector: {zone: b}  # only nodes started with this label (ray start --labels)
    max_restarts: 1            # Ray restarts a dead actor this often
ray:
  address: null                # a running cluster (auto, host:port), or null: start one
```

Invariants: the file is validated as a whole before any engine is built, and every
error names the field (``engines.llm.base_url: field required``); unknown fields are
refused (a typo must not silently keep a default). An engine the file does not list
runs embedded. Vector index and web search have no OpenAI-compatible API, so they are
embedded only. An API key comes from the file or, better, from the environment variable
named by ``api_key_env``, read when the stack is built. The remote engines' measured
latency profiles are read from beside the file (``<stem>.profiles.json``, written by
`primflow profile --engines FILE`). An embedded LLM, embedder or reranker may name its
``model:`` (a GGUF file for an LLM, an ONNX model folder for the others; a relative
path is relative to the file), checked when the file is read.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from primflow.engines.base import Engine, EngineKind
from primflow.engines.placement import CoreBudget
from primflow.engines.profile import LatencyProfile
from primflow.session.factories import EmbeddedSettings, embedded_factory
from primflow.session.stack import ENGINE_KINDS, EngineFactory, StackError, read_profiles

REMOTE_KINDS = frozenset({EngineKind.LLM, EngineKind.EMBEDDER, EngineKind.RERANKER})


class EngineConfigError(StackError):
    """The engine file is unusable; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Embedded kinds that load a model a user may choose.
MODEL_KINDS = frozenset({EngineKind.LLM, EngineKind.EMBEDDER, EngineKind.RERANKER})


class EmbeddedBackend(_Strict):
    backend: Literal["embedded"]
    kind: EngineKind | None = None
    model: Path | None = None  # GGUF file (LLM) or ONNX model folder; None: shipped one


class OpenAIBackend(_Strict):
    backend: Literal["openai"]
    kind: EngineKind | None = None
    base_url: str
    model: str
    dialect: Literal["vllm", "sglang", "llama_cpp", "llama_cpp_python", "ollama", "openai"] = (
        "openai"
    )
    api: Literal["chat", "completions"] = "chat"  # LLM only
    api_key: str | None = None
    api_key_env: str | None = None
    connect_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(120.0, gt=0)
    max_concurrent_requests: int = Field(16, ge=1)
    max_retries: int = Field(2, ge=0)
    prefix_warmup: bool = True  # LLM: warm-up requests for partial prefill
    prefix_cache: bool | None = None  # None: the dialect's capability
    max_batch_items: int = Field(64, ge=1)  # embedder: texts per request
    rerank_shape: Literal["cohere", "tei"] = "cohere"  # reranker

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        return value.rstrip("/")

    def resolved_api_key(self, name: str) -> str | None:
        if self.api_key_env is None:
            return self.api_key
        key = os.environ.get(self.api_key_env)
        if not key:
            raise EngineConfigError(
                f"engines.{name}.api_key_env: environment variable {self.api_key_env!r} is unset"
            )
        return key


class RayBackend(_Strict):
    """The embedded engine, one instance per Ray actor (docs/guide/ray.md)."""

    backend: Literal["ray"]
    kind: EngineKind | None = None
    num_instances: int = Field(1, ge=1)
    num_cpus: float = Field(1.0, ge=0)
    num_gpus: float = Field(0.0, ge=0)
    resources: dict[str, float] = Field(default_factory=dict)  # custom resources per actor
    label_selector: dict[str, str] = Field(default_factory=dict)  # node labels required
    max_restarts: int = Field(1, ge=-1)  # -1: restart forever
    placement_timeout_s: float = Field(60.0, gt=0)


class RayCluster(_Strict):
    """Where the Ray engines run: a running cluster's ``address``, or None to start a
    local Ray (or use the one this process already initialised)."""

    address: str | None = None


EngineEntry = Annotated[
    EmbeddedBackend | OpenAIBackend | RayBackend, Field(discriminator="backend")
]

# Kinds whose per-query state (a query's index) lives in the instance that made it,
# so a second instance could not serve the query's next primitive.
SINGLE_INSTANCE_KINDS = frozenset({EngineKind.VECTOR_INDEX})


class EngineConfig(_Strict):
    engines: dict[str, EngineEntry]
    ray: RayCluster | None = None

    def kind_of(self, name: str) -> EngineKind | None:
        entry = self.engines.get(name)
        return (entry.kind if entry else None) or ENGINE_KINDS.get(name)

    def check(self) -> None:
        for name, entry in self.engines.items():
            kind = self.kind_of(name)
            if kind is None:
                raise EngineConfigError(
                    f"engines.{name}.kind: required for an engine name the apps do not know "
                    f"(known: {', '.join(ENGINE_KINDS)})"
                )
            if entry.kind is not None and name in ENGINE_KINDS and entry.kind != ENGINE_KINDS[name]:
                raise EngineConfigError(
                    f"engines.{name}.kind: {name!r} is a {ENGINE_KINDS[name]} engine, "
                    f"not {entry.kind}"
                )
            if isinstance(entry, OpenAIBackend) and kind not in REMOTE_KINDS:
                raise EngineConfigError(
                    f"engines.{name}.backend: a {kind} engine has no OpenAI-compatible API; "
                    "use backend: embedded"
                )
            if (
                isinstance(entry, RayBackend)
                and kind in SINGLE_INSTANCE_KINDS
                and entry.num_instances > 1
            ):
                raise EngineConfigError(
                    f"engines.{name}.num_instances: a {kind} engine keeps each query's index "
                    "in the instance that built it, so it runs as one instance"
                )
            if isinstance(entry, EmbeddedBackend) and entry.model is not None:
                _check_model(name, kind, entry.model)

    def with_models_under(self, folder: Path) -> EngineConfig:
        """A copy whose relative ``model:`` paths are relative to ``folder``."""
        engines = {
            name: entry.model_copy(update={"model": folder / entry.model})
            if isinstance(entry, EmbeddedBackend)
            and entry.model is not None
            and not entry.model.is_absolute()
            else entry
            for name, entry in self.engines.items()
        }
        return self.model_copy(update={"engines": engines})


def _check_model(name: str, kind: EngineKind, model: Path) -> None:
    from primflow.engines.model_paths import ModelPathError, check_embed_model, check_llm_model

    if kind not in MODEL_KINDS:
        raise EngineConfigError(f"engines.{name}.model: a {kind} engine loads no model")
    try:
        if kind is EngineKind.LLM:
            check_llm_model(model)
        else:
            check_embed_model(model)
    except ModelPathError as exc:
        raise EngineConfigError(f"engines.{name}.model: {exc}") from None


def parse_engine_config(
    data: Any, source: str = "<engines>", base_dir: Path | None = None
) -> EngineConfig:
    """Validate an engine stack mapping; ``base_dir`` anchors relative ``model:`` paths."""
    try:
        config = EngineConfig.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        raise EngineConfigError(f"{source}: {problems}") from None
    if base_dir is not None:
        config = config.with_models_under(base_dir)
    try:
        config.check()
    except EngineConfigError as err:
        raise EngineConfigError(f"{source}: {err}") from None
    return config


def load_engine_config(path: Path) -> EngineConfig:
    """Read and validate an engine file; errors name the file and the field."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise EngineConfigError(f"cannot read engine file {str(path)!r}: {err}") from None
    except yaml.YAMLError as err:
        raise EngineConfigError(f"{str(path)!r} is not valid YAML: {err}") from None
    return parse_engine_config(data, str(path), base_dir=path.parent)


def config_factory(
    config: EngineConfig,
    embedded: EngineFactory,
    measured: Mapping[str, LatencyProfile] | None = None,
    engines_file: Path | None = None,
    settings: EmbeddedSettings | None = None,
) -> EngineFactory:
    """Builds the file's remote engines and its embedded engines with a ``model:`` of
    their own (on ``settings``, the embedded engines' other knobs); ``embedded`` builds
    the rest.

    A remote engine's profile is its entry in ``measured`` (what `primflow profile
    --engines FILE` saved), else the one the stack passes (``--profiles``), else its
    kind's default with a :class:`RemoteProfileWarning`.
    """
    found = dict(measured or {})

    def build(
        name: str, kind: EngineKind, budget: CoreBudget, profile: LatencyProfile | None
    ) -> Engine | Sequence[Engine]:
        entry = config.engines.get(name)
        if isinstance(entry, RayBackend):
            from primflow.session.ray_engines import build_ray_instances

            address = config.ray.address if config.ray is not None else None
            return build_ray_instances(name, kind, entry, embedded, profile, address)
        if isinstance(entry, OpenAIBackend):
            return build_remote(name, kind, entry, found.get(name) or profile, engines_file)
        if isinstance(entry, EmbeddedBackend) and entry.model is not None:
            chosen = with_model(settings or EmbeddedSettings(), kind, entry.model)
            return embedded_factory(chosen)(name, kind, budget, profile)
        return embedded(name, kind, budget, profile)

    return build


def with_model(settings: EmbeddedSettings, kind: EngineKind, model: Path) -> EmbeddedSettings:
    """``settings`` with ``model`` as the model of a ``kind`` engine."""
    if kind is EngineKind.LLM:
        return dataclasses.replace(settings, llm_model_path=str(model), judge_model_path=None)
    return dataclasses.replace(settings, embed_model_dir=model)


def build_remote(
    name: str,
    kind: EngineKind,
    entry: OpenAIBackend,
    profile: LatencyProfile | None,
    engines_file: Path | None = None,
) -> Engine:
    from primflow.engines.remote import (
        DIALECTS,
        ClientSettings,
        DialectName,
        RemoteEmbedder,
        RemoteLLMEngine,
        RemoteReranker,
    )
    from primflow.engines.remote.profile import remote_profile

    settings = ClientSettings(
        base_url=entry.base_url,
        api_key=entry.resolved_api_key(name),
        connect_timeout_s=entry.connect_timeout_s,
        read_timeout_s=entry.read_timeout_s,
        max_concurrent_requests=entry.max_concurrent_requests,
        max_retries=entry.max_retries,
    )
    dialect = DIALECTS[DialectName(entry.dialect)]
    can_reuse = dialect.can_reuse_prefix if entry.prefix_cache is None else entry.prefix_cache
    is_llm = kind is EngineKind.LLM
    chosen = remote_profile(
        name, str(kind), profile, can_reuse_prefix=can_reuse and is_llm, engines_file=engines_file
    )
    if is_llm:
        return RemoteLLMEngine(
            name,
            settings,
            entry.model,
            dialect=dialect,
            api=entry.api,
            is_warmup_enabled=entry.prefix_warmup and can_reuse,
            profile=chosen,
        )
    if kind is EngineKind.EMBEDDER:
        return RemoteEmbedder(
            name, settings, entry.model, max_batch_items=entry.max_batch_items, profile=chosen
        )
    if kind is EngineKind.RERANKER:
        return RemoteReranker(name, settings, entry.model, shape=entry.rerank_shape, profile=chosen)
    raise EngineConfigError(f"engines.{name}.backend: no remote engine of kind {kind}")


def stack_factory(
    engines_file: Path | None, embedded: EngineFactory, settings: EmbeddedSettings | None = None
) -> EngineFactory:
    """The factory for `--engines FILE` (None: every engine embedded), with the remote
    engines' profiles saved beside the file. For run, bench, profile and serve alike;
    ``settings`` are the embedded engines' knobs, for the file's engines with a
    ``model:`` of their own."""
    if engines_file is None:
        return embedded
    from primflow.engines.remote.profile import profiles_path_for

    config = load_engine_config(engines_file)
    measured = read_profiles(profiles_path_for(engines_file))
    return config_factory(config, embedded, measured, engines_file, settings)
