"""A model path that is not a model fails clearly, naming the path, before any model
loads: `--llm-model` / `--embed-model` on the commands, ``model:`` in an engine file,
and an embedder engine built from Python (at start). The real models chosen by these
options run in tests/engines/test_user_models.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from primflow.cli import main
from primflow.engines.base import EngineError
from primflow.engines.embedder import EmbedderEngine
from primflow.engines.model_paths import ModelPathError, check_embed_model, check_llm_model
from primflow.session.engine_config import EngineConfigError, load_engine_config


@pytest.fixture
def fake_gguf(tmp_path: Path) -> Path:
    path = tmp_path / "my-model.gguf"
    path.write_text("not really a model\n")  # a text file renamed .gguf
    return path


def test_llm_model_checks(tmp_path: Path, fake_gguf: Path) -> None:
    with pytest.raises(ModelPathError, match=r"my-model\.gguf' is not a GGUF file"):
        check_llm_model(fake_gguf)
    with pytest.raises(ModelPathError, match=r"nowhere\.gguf' does not exist"):
        check_llm_model(tmp_path / "nowhere.gguf")
    with pytest.raises(ModelPathError, match="is a folder, not a GGUF file"):
        check_llm_model(tmp_path)
    real = tmp_path / "real.gguf"
    real.write_bytes(b"GGUF\x03\x00\x00\x00")
    assert check_llm_model(real) == real


def test_embed_model_checks(tmp_path: Path) -> None:
    folder = tmp_path / "embedder"
    folder.mkdir()
    with pytest.raises(ModelPathError, match=r"has no model\.onnx"):
        check_embed_model(folder)
    (folder / "model.onnx").write_text("hello")
    with pytest.raises(ModelPathError, match=r"model\.onnx' is not an ONNX model file"):
        check_embed_model(folder)
    (folder / "model.onnx").write_bytes(b"\x08\x07")
    with pytest.raises(ModelPathError, match=r"has no tokenizer\.json"):
        check_embed_model(folder)
    (folder / "tokenizer.json").write_text("{}")
    assert check_embed_model(folder).onnx == folder / "model.onnx"
    with pytest.raises(ModelPathError, match="is a file; pass the folder"):
        check_embed_model(folder / "model.onnx")


@pytest.mark.parametrize("command", ["run", "bench", "profile", "serve"])
def test_every_engine_command_refuses_a_file_that_is_not_a_model(
    command: str, fake_gguf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = {
        "run": ["run", "naive_rag", "--docs", "samples/docs", "--question", "q?"],
        "bench": ["bench", "--apps", "naive_rag"],
        "profile": ["profile", "--engines", "llm"],
        "serve": ["serve", "--engines", "fake"],
    }[command]
    assert main([*argv, "--llm-model", str(fake_gguf)]) == 2
    err = capsys.readouterr().err
    assert f"--llm-model: LLM model file {str(fake_gguf)!r} is not a GGUF file" in err


def test_run_refuses_an_embedding_folder_without_a_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "naive_rag", "--docs", "samples/docs", "--question", "q?"]
    assert main([*argv, "--embed-model", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"--embed-model: embedding model folder {str(tmp_path)!r} has no model.onnx" in err


def test_engine_file_model_entries_are_checked_relative_to_the_file(
    tmp_path: Path, fake_gguf: Path
) -> None:
    engines = tmp_path / "engines.yaml"
    engines.write_text("engines:\n  llm: {backend: embedded, model: my-model.gguf}\n")
    with pytest.raises(EngineConfigError, match=r"engines\.llm\.model: LLM model file") as info:
        load_engine_config(engines)
    assert str(fake_gguf) in str(info.value) and str(engines) in str(info.value)
    engines.write_text("engines:\n  vector_index: {backend: embedded, model: x.gguf}\n")
    with pytest.raises(EngineConfigError, match="a vector_index engine loads no model"):
        load_engine_config(engines)
    (tmp_path / "good.gguf").write_bytes(b"GGUF\x03\x00\x00\x00")
    engines.write_text("engines:\n  judge: {backend: embedded, model: good.gguf}\n")
    entry = load_engine_config(engines).engines["judge"]
    assert entry.model == tmp_path / "good.gguf"  # type: ignore[union-attr]


def test_an_embedder_on_a_folder_that_is_not_a_model_fails_at_start(tmp_path: Path) -> None:
    engine = EmbedderEngine("embedder", model_dir=tmp_path / "missing")
    with pytest.raises(EngineError, match=r"missing' does not exist"):
        asyncio.run(engine.start())
    asyncio.run(engine.close())


def test_serve_carries_the_model_files_to_the_embedded_engines(tmp_path: Path) -> None:
    from primflow.cli import build_parser
    from primflow.commands.serve import settings_from
    from primflow.serve.service import Service

    model = tmp_path / "mine.gguf"
    model.write_bytes(b"GGUF\x03\x00\x00\x00")
    config = tmp_path / "serve.yaml"
    config.write_text(f"llm-model: {model}\n")
    args = build_parser().parse_args(["serve", "--config", str(config)])
    settings = settings_from(args)
    assert settings.llm_model == model and settings.embed_model is None
    embedded = Service(settings)._embedded_settings()
    assert embedded.llm_model_path == str(model) and embedded.embed_model_dir is None
