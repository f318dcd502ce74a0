"""The engine file (session/engine_config.py): validation naming the field, the mixed
stack it builds, and the prefix capability the split-prefill pass reads. No server."""

from __future__ import annotations

from pathlib import Path

import pytest

from primflow import get_app, lower, optimize
from primflow.cli import main
from primflow.engines.base import EngineKind
from primflow.engines.profile import LatencyProfile
from primflow.engines.remote import RemoteEmbedder, RemoteLLMEngine, RemoteProfile
from primflow.engines.remote.profile import RemoteProfileWarning
from primflow.graph.ir import Op
from primflow.session import EngineStack, fake_factory
from primflow.session.engine_config import (
    EngineConfigError,
    config_factory,
    load_engine_config,
    parse_engine_config,
    stack_factory,
)

REMOTE_LLM = {"backend": "openai", "base_url": "http://127.0.0.1:8000", "model": "m"}


def config(**engines: object) -> dict[str, object]:
    return {"engines": engines}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            config(llm={"backend": "openai", "model": "m"}),
            r"engines\.llm\.openai\.base_url: Field required",
        ),
        (config(llm={**REMOTE_LLM, "dialect": "tgi"}), r"engines\.llm\.openai\.dialect"),
        (config(llm={**REMOTE_LLM, "max_concurent_requests": 4}), r"max_concurent_requests: Extra"),
        (config(llm={**REMOTE_LLM, "base_url": "127.0.0.1:8000"}), r"base_url: .*http://"),
        (config(llm={"backend": "grpc"}), r"engines\.llm: .*'embedded', 'openai'"),
        (config(vector_index={**REMOTE_LLM}), r"engines\.vector_index\.backend: a vector_index"),
        (config(mine={**REMOTE_LLM}), r"engines\.mine\.kind: required"),
        (
            config(judge={**REMOTE_LLM, "kind": "embedder"}),
            r"engines\.judge\.kind: 'judge' is a llm",
        ),
    ],
)
def test_errors_name_the_field(data: dict[str, object], message: str) -> None:
    with pytest.raises(EngineConfigError, match=message):
        parse_engine_config(data, "remote.yaml")


def test_api_key_from_an_unset_variable_is_refused_when_the_engine_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PRIMFLOW_TEST_KEY", raising=False)
    parsed = parse_engine_config(config(llm={**REMOTE_LLM, "api_key_env": "PRIMFLOW_TEST_KEY"}))
    with pytest.raises(EngineConfigError, match=r"engines\.llm\.api_key_env: .*is unset"):
        EngineStack({"llm": EngineKind.LLM}, config_factory(parsed, fake_factory()))
    monkeypatch.setenv("PRIMFLOW_TEST_KEY", "secret")
    stack = EngineStack({"llm": EngineKind.LLM}, config_factory(parsed, fake_factory()))
    engine = stack.engines["llm"]
    assert isinstance(engine, RemoteLLMEngine) and engine.client.settings.api_key == "secret"


def test_mixed_stack_remote_where_listed_embedded_elsewhere(tmp_path: Path) -> None:
    path = tmp_path / "remote.yaml"
    path.write_text(
        "engines:\n"
        "  llm: {backend: openai, base_url: 'http://h:1', model: m, dialect: vllm}\n"
        "  embedder: {backend: openai, base_url: 'http://h:2', model: e, max_batch_items: 8}\n"
        "  vector_index: {backend: embedded}\n"
    )
    measured = {"llm": LatencyProfile(base_s=0.5)}
    with pytest.warns(UserWarning, match="'embedder' has no measured latency profile"):
        stack = EngineStack.for_apps(
            ["naive_rag"],
            config_factory(load_engine_config(path), fake_factory()),
            profiles=measured,
        )
    llm, embedder = stack.engines["llm"], stack.engines["embedder"]
    assert isinstance(llm, RemoteLLMEngine) and llm.dialect.name == "vllm"
    assert isinstance(llm.profile, RemoteProfile) and llm.profile.base_s == 0.5
    assert isinstance(embedder, RemoteEmbedder) and embedder.max_batch_items == 8
    assert type(stack.engines["vector_index"]).__name__.startswith("Fake")


def graph_ops(profiles: dict[str, LatencyProfile]) -> set[Op]:
    app = get_app("naive_rag")
    graph = lower(app.template(), app.query("How much leave?", ["25 days of leave."]))
    optimized, _ = optimize(graph, profiles)
    return {node.op for node in optimized.nodes}


def test_split_prefill_only_where_the_server_can_reuse_a_prefix() -> None:
    default = LatencyProfile.default_for("llm")
    assert Op.LLM_PARTIAL_PREFILL in graph_ops({"llm": RemoteProfile(can_reuse_prefix=True)})
    assert Op.LLM_PARTIAL_PREFILL in graph_ops({"llm": default})
    assert Op.LLM_PARTIAL_PREFILL not in graph_ops({"llm": RemoteProfile(can_reuse_prefix=False)})


def test_run_refuses_a_bad_engine_file_before_any_model_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "leave.md").write_text("Employees get 25 days of leave.")
    path = tmp_path / "bad.yaml"
    path.write_text("engines:\n  llm: {backend: openai, model: m}\n")
    code = main(
        ["run", "naive_rag", "--question", "hi", "--docs", str(tmp_path), "--engines", str(path)]
    )
    assert code == 2
    assert "engines.llm.openai.base_url: Field required" in capsys.readouterr().err


def test_a_remote_engine_without_a_saved_profile_warns_naming_the_file_and_the_fix(
    tmp_path: Path,
) -> None:
    path = tmp_path / "remote.yaml"
    path.write_text("engines:\n  llm: {backend: openai, base_url: 'http://h:1', model: m}\n")
    with pytest.warns(RemoteProfileWarning) as caught:
        stack = EngineStack.for_apps(["naive_rag"], stack_factory(path, fake_factory()))
    message = str(caught[0].message)
    assert "'llm' has no measured latency profile" in message
    assert str(tmp_path / "remote.profiles.json") in message
    assert f"primflow profile --engines {path}" in message
    assert stack.engines["llm"].profile.base_s == LatencyProfile.default_for("llm").base_s
