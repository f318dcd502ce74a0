"""Loading documents from disk and chunking them into :class:`~primflow.values.Chunk` s.

Owns the loaders (.txt, .md, .pdf, .jsonl) and chunking with the pinned
``semantic-text-splitter`` (sizes in characters). Invariants: every loaded document has
non-empty text and a ``source`` (its file name, or ``file.jsonl#line``); chunk ids run
0..n-1 over the whole corpus in document order, so a chunk id names one chunk of a query.
Errors name the path (and line) at fault.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from semantic_text_splitter import MarkdownSplitter, TextSplitter

from primflow.values import Chunk, SealedChunks, sealed_chunks_of

SUPPORTED_SUFFIXES = (".txt", ".md", ".pdf", ".jsonl")


class DocumentError(ValueError):
    """A document path cannot be loaded; the message names the path and the reason."""


class UnsupportedFileType(DocumentError):
    """The file's type is none of ``SUPPORTED_SUFFIXES``."""


@dataclass(frozen=True, slots=True)
class Document:
    """A document to answer from: its text and where it came from (``source``).

    Examples:
        >>> from primflow import Document, Query
        >>> doc = Document("Full-time employees get 25 days of paid leave.", "handbook.md")
        >>> Query("How much leave?", [doc]).documents[0].source
        'handbook.md'
    """

    text: str
    source: str


def load_documents(path: str | Path) -> list[Document]:
    """Load one file, or every supported file under a folder (sorted, recursively).

    Supported: .txt, .md, .pdf (with pypdf), and .jsonl (one ``{"text", "source"}``
    object per line). A document's source is its path relative to the folder.

    Examples:
        >>> import pathlib, tempfile
        >>> from primflow import load_documents
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "leave.md").write_text("Full-time employees get 25 days.")
        >>> _ = (folder / "notes").mkdir()
        >>> _ = (folder / "notes" / "vpn.txt").write_text("Use the VPN on public networks.")
        >>> [(d.source, d.text) for d in load_documents(folder)]
        [('leave.md', 'Full-time employees get 25 days.'),
         ('notes/vpn.txt', 'Use the VPN on public networks.')]
    """
    root = Path(path)
    if not root.exists():
        raise DocumentError(f"document path {str(root)!r} does not exist")
    if root.is_file():
        return _load_file(root, root.name)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in SUPPORTED_SUFFIXES)
    if not files:
        kinds = ", ".join(SUPPORTED_SUFFIXES)
        raise DocumentError(f"folder {str(root)!r} has no documents (looked for {kinds})")
    documents: list[Document] = []
    for file in files:
        documents.extend(_load_file(file, file.relative_to(root).as_posix()))
    return documents


def _load_file(file: Path, source: str) -> list[Document]:
    _check_suffix(file.name, repr(str(file)))
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise DocumentError(f"cannot read {str(file)!r}: {exc}") from None
    return _parse(data, file.suffix.lower(), source, repr(str(file)))


def parse_document(name: str, data: bytes) -> list[Document]:
    """The documents in the bytes of a file called ``name`` (e.g. an upload): parsed in
    memory, nothing is read from disk; ``name`` picks the loader and is the source.

    Examples:
        >>> from primflow.api.documents import parse_document
        >>> parse_document("leave.md", "Full-time employees get 25 days.".encode())
        [Document(text='Full-time employees get 25 days.', source='leave.md')]
        >>> [d.source for d in parse_document("faq.jsonl", b'{"text": "a"}\n{"text": "b"}')]
        ['faq.jsonl#1', 'faq.jsonl#2']
    """
    where = repr(name)
    _check_suffix(name, where)
    return _parse(data, Path(name).suffix.lower(), name, where)


def _check_suffix(name: str, where: str) -> None:
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        kinds = ", ".join(SUPPORTED_SUFFIXES)
        raise UnsupportedFileType(f"{where}: unsupported file type {suffix!r} (use {kinds})")


def _parse(data: bytes, suffix: str, source: str, where: str) -> list[Document]:
    if suffix in (".txt", ".md"):
        docs = [Document(_decode(data, where), source)]
    elif suffix == ".pdf":
        docs = [Document(_read_pdf(data, where), source)]
    else:
        docs = _read_jsonl(_decode(data, where), source, where)
    docs = [d for d in docs if d.text.strip()]
    if not docs:
        raise DocumentError(f"{where} has no text")
    return docs


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{where} is not UTF-8 text: {exc.reason}") from None


def _read_pdf(data: bytes, where: str) -> str:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError:
        raise DocumentError(
            f"{where}: reading PDF needs pypdf (pip install 'primflow[engines]')"
        ) from None
    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, OSError, ValueError) as exc:
        raise DocumentError(f"{where} is not a readable PDF: {exc}") from None
    except Exception as exc:  # a hostile upload can break a parser in any way
        raise DocumentError(f"{where} is not a readable PDF ({type(exc).__name__})") from None
    return "\n\n".join(pages)


def _read_jsonl(text: str, source: str, file_where: str) -> list[Document]:
    """One document per line: an object with a ``text`` field (and optional ``source``)."""
    docs: list[Document] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{file_where} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DocumentError(f"{where} is not JSON: {exc.msg}") from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise DocumentError(f"{where}: expected an object with a string 'text' field")
        docs.append(Document(record["text"], str(record.get("source", f"{source}#{number}"))))
    return docs


def chunk_documents(
    documents: Iterable[Document], chunk_size: int, chunk_overlap: int = 0
) -> SealedChunks:
    """Split each document into chunks of at most ``chunk_size`` characters.

    Markdown files are split on their structure (headings, lists) first. The list is
    sealed (``primflow.values``), so a vector engine takes it without a pass over it.
    """
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be > 0, got {chunk_size}")
    if not 0 <= chunk_overlap < chunk_size:
        raise ValueError(f"chunk_overlap must be in [0, chunk_size), got {chunk_overlap}")
    text_splitter = TextSplitter(chunk_size, overlap=chunk_overlap)
    md_splitter = MarkdownSplitter(chunk_size, overlap=chunk_overlap)
    chunks: list[Chunk] = []
    for doc in documents:
        splitter = md_splitter if doc.source.endswith(".md") else text_splitter
        for piece in splitter.chunks(doc.text):
            chunks.append(Chunk(text=piece, source=doc.source, chunk_id=len(chunks)))
    return sealed_chunks_of(chunks)


def as_documents(items: Sequence[Document | str]) -> list[Document]:
    """Accept plain strings as documents too (sources ``doc-0``, ``doc-1``...)."""
    return [d if isinstance(d, Document) else Document(d, f"doc-{i}") for i, d in enumerate(items)]
