"""The plain loops of the parity benchmark: the raw library calls a user would write.

Nothing here imports primflow's engines: onnxruntime + tokenizers, faiss and
llama-cpp-python are called directly, with the settings a careful afternoon's loop would
use (2 threads, length-sorted embedding batches, greedy decoding). Only the *paths* of
the model files come from primflow, so both sides load the very same files.

This module runs in its own spawned process (bench_parity.py): two OpenMP llama.cpp
callers in one process slow each other down (docs/results/llm-engine.md, one llama
thread per process), which would make either side look worse than it is.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]
DIM = 384
MAX_NUM_TOKENS = 256  # MiniLM's max_seq_length

ANSWER_PROMPT = (
    "Answer the question using only the context. Be brief.\n"
    "Question: {question}\nContext:\n{context}\nAnswer:"
)  # primflow's default QueryConfig.prompts.answer
COMBINE_PROMPT = (
    "Combine the partial answers into one brief answer to the question.\n"
    "Question: {question}\nPartial answers:\n{answers}\nAnswer:"
)  # primflow's default QueryConfig.prompts.combine


class PlainEmbedder:
    """MiniLM on onnxruntime: length-sorted batches, padded per batch, mean-pool + L2."""

    def __init__(self, model_path: str, tokenizer_path: str, num_threads: int = 2) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.log_severity_level = 3
        self.session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(tokenizer_path)
        self.tokenizer.enable_truncation(max_length=MAX_NUM_TOKENS)
        self.tokenizer.enable_padding()  # to the longest text of each batch

    def embed(self, texts: Sequence[str], batch_size: int) -> Vectors:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), DIM), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            encodings = self.tokenizer.encode_batch([texts[i] for i in rows])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            (hidden,) = self.session.run(["last_hidden_state"], feeds)
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / weights.sum(axis=1)
            out[rows] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        return out


def faiss_ingest_search(
    vectors: Vectors, queries: Vectors, k: int
) -> tuple[float, float, npt.NDArray[np.int64]]:
    """Flat inner-product index: (ingest seconds, search seconds, top-k row ids)."""
    import faiss

    started_s = time.perf_counter()
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    ingested_s = time.perf_counter()
    _, rows = index.search(queries, k)
    return ingested_s - started_s, time.perf_counter() - ingested_s, rows


class PlainChat:
    """``Llama.create_chat_completion`` one request at a time, answers of a fixed length
    (end-of-generation tokens are masked, as the engine's ``ignore_eos`` runs past them)."""

    def __init__(self, model_path: str, num_threads: int = 2, n_ctx: int = 4096) -> None:
        import llama_cpp as lc

        self.llm = lc.Llama(
            model_path=model_path, n_ctx=n_ctx, n_threads=num_threads, verbose=False
        )
        vocab = lc.llama_model_get_vocab(self.llm._model.model)
        num_vocab = int(lc.llama_vocab_n_tokens(vocab))
        self.eog_tokens = [t for t in range(num_vocab) if lc.llama_vocab_is_eog(vocab, t)]

    def complete(self, prompt: str, max_tokens: int, is_fixed_length: bool = True) -> str:
        self.llm.reset()  # no prompt reuse from the previous call (the engine side forgets too)
        bias = {t: -1e9 for t in self.eog_tokens} if is_fixed_length else None
        out: Any = self.llm.create_chat_completion(
            [{"role": "user", "content": prompt}],
            max_tokens=max_tokens,
            temperature=0.0,
            logit_bias=bias,
        )
        return str(out["choices"][0]["message"]["content"] or "")


class PlainBatchedLoop:
    """llama.cpp's low-level API: every prompt prefilled in one ``llama_batch`` (each its
    own sequence), then one token per live sequence per ``llama_decode``, greedy.

    ``is_flash_attn``: None keeps llama.cpp's default (``auto``: on, on this CPU), False
    turns flash attention off, True on."""

    def __init__(
        self,
        chat: PlainChat,
        max_num_seqs: int = 8,
        n_ctx: int = 4096,
        is_flash_attn: bool | None = None,
    ) -> None:
        import llama_cpp as lc
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        self.lc = lc
        self.chat = chat
        params = lc.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = 512
        params.n_ubatch = 512
        params.n_seq_max = max_num_seqs
        params.n_threads = params.n_threads_batch = chat.llm.n_threads
        params.kv_unified = True
        if is_flash_attn is not None:
            params.flash_attn_type = (
                lc.LLAMA_FLASH_ATTN_TYPE_ENABLED
                if is_flash_attn
                else lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
            )
        self.ctx = lc.llama_init_from_model(chat.llm._model.model, params)
        self.memory = lc.llama_get_memory(self.ctx)
        self.batch = lc.llama_batch_init(512, 0, max_num_seqs)
        self.num_vocab = chat.llm.n_vocab()
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        self.template = env.from_string(chat.llm.metadata["tokenizer.chat_template"])

    def prompt_tokens(self, prompt: str) -> list[int]:
        text = self.template.render(
            messages=[{"role": "user", "content": prompt}], add_generation_prompt=True
        )
        return list(self.chat.llm.tokenize(text.encode(), add_bos=False, special=True))

    def generate(self, prompts: Sequence[str], max_tokens: int) -> int:
        """Greedy ``max_tokens`` tokens for every prompt; returns tokens generated."""
        lc = self.lc
        lc.llama_memory_clear(self.memory, True)
        tokens = [self.prompt_tokens(p) for p in prompts]
        # Prefill: pack prompts into batches of at most 512 tokens, logits at each end.
        next_tokens: dict[int, int] = {}
        pending = [(seq, pos, tok) for seq, ts in enumerate(tokens) for pos, tok in enumerate(ts)]
        for start in range(0, len(pending), 512):
            self.batch.n_tokens = 0
            last_index: dict[int, int] = {}
            for seq, pos, tok in pending[start : start + 512]:
                is_last = pos == len(tokens[seq]) - 1
                if is_last:
                    last_index[seq] = self.batch.n_tokens
                self._add(tok, pos, seq, is_last)
            lc.llama_decode(self.ctx, self.batch)
            next_tokens.update({seq: self._argmax(i) for seq, i in last_index.items()})
        next_tokens = dict(sorted(next_tokens.items()))
        positions = {seq: len(ts) for seq, ts in enumerate(tokens)}
        for _ in range(max_tokens - 1):
            self.batch.n_tokens = 0
            for seq, tok in next_tokens.items():
                self._add(tok, positions[seq], seq, True)
                positions[seq] += 1
            lc.llama_decode(self.ctx, self.batch)
            next_tokens = {seq: self._argmax(i) for i, seq in enumerate(next_tokens)}
        return max_tokens * len(tokens)

    def _add(self, token: int, pos: int, seq: int, logits: bool) -> None:
        b = self.batch
        i = b.n_tokens
        b.token[i], b.pos[i], b.n_seq_id[i] = token, pos, 1
        b.seq_id[i][0] = seq
        b.logits[i] = logits
        b.n_tokens = i + 1

    def _argmax(self, index: int) -> int:
        row = np.ctypeslib.as_array(
            self.lc.llama_get_logits_ith(self.ctx, index), shape=(self.num_vocab,)
        ).copy()
        row[self.chat.eog_tokens] = -np.inf  # fixed length, as the chat side
        return int(np.argmax(row))


def numbered(passages: Sequence[str]) -> str:
    """The context block, as primflow renders a list of hits."""
    return "\n".join(f"[{i + 1}] {p}" for i, p in enumerate(passages))


class PlainRag:
    """Naive RAG as a plain loop: embed the passages, FAISS, embed the question,
    search, prompt, ``create_chat_completion`` (one shot, or a tree of calls)."""

    def __init__(self, embedder: PlainEmbedder, chat: PlainChat, batch_size: int = 32) -> None:
        self.embedder = embedder
        self.chat = chat
        self.batch_size = batch_size

    def answer(
        self, question: str, passages: Sequence[str], top_k: int, max_tokens: int, mode: str
    ) -> tuple[str, list[str]]:
        import faiss

        index = faiss.IndexFlatIP(DIM)
        index.add(self.embedder.embed(passages, self.batch_size))
        _, rows = index.search(self.embedder.embed([question], self.batch_size), top_k)
        hits = [passages[int(r)] for r in rows[0] if r >= 0]
        if mode == "one_shot":
            prompt = ANSWER_PROMPT.format(question=question, context=numbered(hits))
            return self.chat.complete(prompt, max_tokens), hits
        return self._tree(question, hits, max_tokens), hits

    def _tree(self, question: str, hits: Sequence[str], max_tokens: int) -> str:
        """One call per passage, then pairs combined level by level (fan-out 2)."""
        level = [
            self.chat.complete(ANSWER_PROMPT.format(question=question, context=numbered([h])),
                               max_tokens)
            for h in hits
        ]  # fmt: skip
        while len(level) > 1:
            groups = [level[i : i + 2] for i in range(0, len(level), 2)]
            level = [
                self._combine(question, group, max_tokens) if len(group) > 1 else group[0]
                for group in groups
            ]
        return level[0]

    def _combine(self, question: str, answers: Sequence[str], max_tokens: int) -> str:
        listed = "\n".join(f"- {a}" for a in answers)
        return self.chat.complete(
            COMBINE_PROMPT.format(question=question, answers=listed), max_tokens
        )


# --- the child process's side: loaded once by the pool's initializer ---

_state: dict[str, Any] = {}


def load(model_path: str, onnx_path: str, tokenizer_path: str, num_threads: int) -> None:
    chat = PlainChat(model_path, num_threads)
    embedder = PlainEmbedder(onnx_path, tokenizer_path, num_threads)
    _state.update(
        chat=chat,
        embedder=embedder,
        batched=PlainBatchedLoop(chat),
        batched_fa_off=PlainBatchedLoop(chat, is_flash_attn=False),
        rag=PlainRag(embedder, chat),
    )
    embedder.embed(["warm up"], 32)
    chat.complete("Say hi.", 4)


def timed_embed(texts: Sequence[str], batch_size: int) -> tuple[float, Vectors]:
    started_s = time.perf_counter()
    vectors = _state["embedder"].embed(texts, batch_size)
    return time.perf_counter() - started_s, vectors


def timed_faiss(
    vectors: Vectors, queries: Vectors, k: int
) -> tuple[float, float, npt.NDArray[np.int64]]:
    return faiss_ingest_search(vectors, queries, k)


def timed_retrieval(
    vectors: Vectors, query: Vectors, texts: Sequence[str], k: int
) -> tuple[float, list[int]]:
    """One query's retrieval step as a plain loop writes it: a flat index over the
    passages' vectors, one search, the hits as (passage, score) pairs; the row ids."""
    import faiss

    started_s = time.perf_counter()
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    scores, rows = index.search(query, k)
    hits = [(texts[r], float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0]
    seconds = time.perf_counter() - started_s
    assert len(hits) == min(k, len(texts))
    return seconds, [int(r) for r in rows[0]]


def timed_searches(vectors: Vectors, queries: Vectors, k: int) -> tuple[float, list[list[int]]]:
    """Several queries against one collection, as a plain loop serves them: the index is
    built beforehand (not timed), then one ``index.search`` per query."""
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    started_s = time.perf_counter()
    found = [index.search(queries[i : i + 1], k)[1] for i in range(len(queries))]
    seconds = time.perf_counter() - started_s
    return seconds, [rows[0].tolist() for rows in found]


def timed_chat(prompts: Sequence[str], max_tokens: int) -> tuple[float, list[str]]:
    started_s = time.perf_counter()
    texts = [_state["chat"].complete(p, max_tokens) for p in prompts]
    return time.perf_counter() - started_s, texts


def timed_batched(
    prompts: Sequence[str], max_tokens: int, is_flash_attn: bool = True
) -> tuple[float, int]:
    """The batched loop with llama.cpp's default flash attention (auto), or with it off."""
    started_s = time.perf_counter()
    num_tokens = _state["batched" if is_flash_attn else "batched_fa_off"].generate(
        prompts, max_tokens
    )
    return time.perf_counter() - started_s, num_tokens


def chunk(documents: Sequence[tuple[str, str]], chunk_size: int, overlap: int) -> list[str]:
    """(text, source) documents cut with semantic-text-splitter (Markdown by structure)."""
    from semantic_text_splitter import MarkdownSplitter, TextSplitter

    text_splitter = TextSplitter(chunk_size, overlap=overlap)
    md_splitter = MarkdownSplitter(chunk_size, overlap=overlap)
    return [
        piece
        for text, source in documents
        for piece in (md_splitter if source.endswith(".md") else text_splitter).chunks(text)
    ]


def timed_rag(
    question: str,
    passages: Sequence[str],
    top_k: int,
    max_tokens: int,
    mode: str,
    documents: Sequence[tuple[str, str]] = (),
    chunking: tuple[int, int] = (300, 30),
) -> tuple[float, str, list[str]]:
    """One question; with ``documents``, they are chunked first (inside the timing)."""
    started_s = time.perf_counter()
    if documents:
        passages = chunk(documents, *chunking)
    text, hits = _state["rag"].answer(question, passages, top_k, max_tokens, mode)
    return time.perf_counter() - started_s, text, hits
