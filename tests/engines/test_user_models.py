"""Model files of the user's choice on the real engines: the shipped SmolLM2 GGUF
copied to a path of its own and passed as `--llm-model` (its chat template read from
the file), sampling flags on that run, and the shipped MiniLM files copied into an ONNX
model folder passed as the embedder's model (``--embed-model``). The cheap bad-path
cases are in tests/unit/test_model_options.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from primflow import EngineStack, Session
from primflow.apps import spec_app
from primflow.cli import main
from primflow.engines.embedder import EmbedderEngine
from primflow.engines.embedder.model_files import onnx_model_path, tokenizer_path
from primflow.engines.llm import LlamaEngine
from primflow.engines.llm.model import default_model_path
from primflow.session import EmbeddedSettings, embedded_factory
from primflow.session.engine_config import stack_factory

pytestmark = pytest.mark.engines

SPEC = """name: ask_llm
steps:
  - name: answer
    kind: generate
    prompt: "Answer in one short sentence. {question}"
    reads: {question: question}
    writes: {text: answer}
outputs: {answer: answer}
"""


@pytest.fixture(scope="module")
def my_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    path = folder / "my-assistant.gguf"
    shutil.copyfile(default_model_path(), path)
    return path


@pytest.fixture(scope="module")
def llm_spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "ask.yaml"
    path.write_text(SPEC)
    return path


def _run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main(["run", *argv, "--json", "--cores", "1"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    record: dict[str, object] = json.loads(line)
    return record


async def test_a_copied_gguf_loads_with_its_chat_template(my_model: Path) -> None:
    engine = LlamaEngine("llm-mine", str(my_model), n_ctx=512, n_threads=1)
    try:
        await engine.start()
        info = await engine.model_info()
    finally:
        await engine.close()
    assert info.path == str(my_model)
    assert info.chat_template is not None and "<|im_start|>" in info.chat_template


def test_run_with_llm_model_answers_and_samples_reproducibly(
    my_model: Path, llm_spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--spec", str(llm_spec), "--llm-model", str(my_model), "--max-tokens", "16"]
    greedy = _run_json(capsys, *base, "--question", "What is the capital of France?")
    assert "Paris" in str(greedy["answer"])
    sampled = [*base, "--question", "Name a colour.", "--temperature", "1.2", "--seed", "5"]
    first, again = _run_json(capsys, *sampled), _run_json(capsys, *sampled)
    assert first["answer"] and first["answer"] == again["answer"]


async def test_an_engine_file_entry_names_the_embedded_llm_model(
    my_model: Path, llm_spec: Path
) -> None:
    engines = my_model.parent / "engines.yaml"
    engines.write_text(f"engines:\n  llm: {{backend: embedded, model: {my_model.name}}}\n")
    app = spec_app(llm_spec)
    factory = stack_factory(engines, embedded_factory(), EmbeddedSettings(n_ctx=1024))
    stack = EngineStack.for_apps([app], factory, num_cores=1)
    async with stack, Session(stack) as session:
        llm = stack.engines["llm"]
        assert isinstance(llm, LlamaEngine)
        assert (await llm.model_info()).path == str(my_model)
        answer = await session.ask(app, "What is the capital of France?")
    assert "Paris" in answer.text


async def test_an_onnx_model_folder_embeds_like_the_shipped_model(tmp_path: Path) -> None:
    folder = tmp_path / "minilm"
    folder.mkdir()
    shutil.copyfile(onnx_model_path(), folder / "model.onnx")
    shutil.copyfile(tokenizer_path(), folder / "tokenizer.json")
    texts = ["Employees get 25 days of leave.", "The office opens at 8 am."]
    mine, shipped = EmbedderEngine("mine", model_dir=folder), EmbedderEngine("shipped")
    try:
        await mine.start()
        await shipped.start()
        assert mine.model_id == f"onnx:{folder.resolve()}" != shipped.model_id
        assert mine.encoder.dim == 384
        ours = mine.encoder.encode(texts, num_threads=1)
        theirs = shipped.encoder.encode(texts, num_threads=1)
    finally:
        await mine.close()
        await shipped.close()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
