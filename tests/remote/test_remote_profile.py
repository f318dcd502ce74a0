"""`primflow profile --engines FILE` against a real llama-cpp-python server: it measures
the remote LLM, saves the profile beside the engine file, and `--engines FILE` reads it
back (no missing-profile warning, the measured numbers in the engine)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from remote_servers import MODEL_ALIAS, LlamaServer

from primflow.cli import main
from primflow.engines.profile import LatencyProfile
from primflow.engines.remote import RemoteLLMEngine, RemoteProfile
from primflow.engines.remote.profile import RemoteProfileWarning, profiles_path_for
from primflow.session import EngineStack, fake_factory
from primflow.session.engine_config import stack_factory

pytestmark = [pytest.mark.remote, pytest.mark.engines]


def test_profile_saves_beside_the_engine_file_and_the_stack_reads_it(
    llama_server: LlamaServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engines = tmp_path / "remote.yaml"
    engines.write_text(
        "engines:\n"
        f"  llm: {{backend: openai, base_url: '{llama_server.base_url}', model: {MODEL_ALIAS},"
        " dialect: llama_cpp_python, max_concurrent_requests: 1}\n"
    )
    assert main(["profile", "--engines", str(engines), "--repeats", "1"]) == 0
    saved = profiles_path_for(engines)
    assert saved == tmp_path / "remote.profiles.json"
    assert f"saved 1 profile(s) to {saved}" in capsys.readouterr().out
    measured = LatencyProfile.from_dict(json.loads(saved.read_text())["llm"])
    # Real numbers from the server: generating costs time per token; a remote LLM has
    # no engine steps; a server that runs one request at a time gains nothing from 4.
    assert measured.per_output_token_s > 0
    assert measured.step_base_s == measured.step_per_seq_s == measured.step_per_token_s == 0
    assert measured != LatencyProfile.default_for("llm")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RemoteProfileWarning)
        stack = EngineStack.for_apps(["naive_rag"], stack_factory(engines, fake_factory()))
    llm = stack.engines["llm"]
    assert isinstance(llm, RemoteLLMEngine) and isinstance(llm.profile, RemoteProfile)
    assert llm.profile.per_output_token_s == measured.per_output_token_s
    assert llm.profile.efficient_batch_size == measured.efficient_batch_size
