"""The embedder equals a plain onnxruntime loop over the same model file and tokenizer.

The plain loop is what a user writes (texts sorted by length, batches padded by the
tokenizer, mean pooling, L2); the encoder sorts by token count, sub-batches, pads itself
and dedups across requests, so its rows must still come out equal and in input order.
"""

import asyncio

import numpy as np
import onnxruntime as ort
import pytest
from tokenizers import Tokenizer

from primflow.engines.base import EngineRequest
from primflow.engines.embedder import EmbedderEngine, MiniLMEncoder
from primflow.engines.embedder.model_files import onnx_model_path, tokenizer_path
from primflow.engines.placement import CoreBudget
from primflow.graph.ir import Op

pytestmark = pytest.mark.engines

WORDS = [
    "leave",
    "days",
    "employees",
    "annual",
    "paid",
    "the",
    "of",
    "and",
    "a",
    "warranty",
    "model",
    "marine",
    "tidepool",
    "office",
    "security",
    "badge",
    "onboarding",
    "release",
    "notes",
    "support",
    "ticket",
    "scheduling",
    "dataflow",
    "engine",
]


def texts(seed: int, num: int) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(num):
        num_words = int(rng.integers(1, 60))
        out.append(" ".join(str(w) for w in rng.choice(WORDS, size=num_words)))
    return out


def plain_loop(items: list[str], batch_size: int) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(
        str(onnx_model_path()), options, providers=["CPUExecutionProvider"]
    )
    tokenizer = Tokenizer.from_file(str(tokenizer_path()))
    tokenizer.enable_truncation(max_length=256)
    tokenizer.enable_padding()
    order = sorted(range(len(items)), key=lambda i: len(items[i]))
    out = np.empty((len(items), 384), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        encodings = tokenizer.encode_batch([items[i] for i in rows])
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        (hidden,) = session.run(["last_hidden_state"], feeds)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / weights.sum(axis=1)
        out[rows] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    return out


@pytest.mark.parametrize("sub_batch_size", [1, 7, 32, 64])
def test_encoder_equals_the_plain_loop_in_input_order(sub_batch_size: int) -> None:
    items = texts(0, 150)
    expected = plain_loop(items, 64)
    for num_threads in (1, 2):
        found = MiniLMEncoder(sub_batch_size=sub_batch_size).encode(items, num_threads)
        np.testing.assert_allclose(found, expected, atol=1e-5)


def test_engine_with_duplicates_and_several_requests_equals_the_plain_loop() -> None:
    first, second = texts(1, 70), texts(2, 40)
    second[:5] = first[10:15]  # shared texts are embedded once, then copied to both
    expected = plain_loop(first + second, 32)

    async def run() -> list[np.ndarray]:
        engine = EmbedderEngine(encoder=MiniLMEncoder(), budget=CoreBudget(num_cores=2))
        await engine.start()
        futures = engine.submit(
            [
                EngineRequest("q1", "embed_docs", Op.EMBED, {"items": first}, {}),
                EngineRequest("q2", "embed_docs", Op.EMBED, {"items": second}, {}),
            ]
        )
        found = [(await f)["vectors"] for f in futures]
        await engine.close()
        return found

    found_first, found_second = asyncio.run(run())
    np.testing.assert_allclose(np.vstack([found_first, found_second]), expected, atol=1e-5)
