"""Loading .txt/.md/.pdf/.jsonl documents, chunking, and the errors for bad paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from primflow.api import Document, DocumentError, chunk_documents, load_documents


def _minimal_pdf(text: str) -> bytes:
    """A one-page PDF with ``text`` in Helvetica, with a correct xref table."""
    stream = f"BT /F1 12 Tf 72 712 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def test_loads_every_supported_kind_from_a_folder(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("plain text file")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("# Title\n\nmarkdown body")
    (tmp_path / "c.jsonl").write_text('{"text": "first"}\n\n{"text": "second", "source": "s2"}\n')
    (tmp_path / "d.pdf").write_bytes(_minimal_pdf("Hello from a PDF"))
    (tmp_path / "ignored.csv").write_text("x,y")
    docs = load_documents(tmp_path)
    assert [d.source for d in docs] == ["a.txt", "c.jsonl#1", "s2", "d.pdf", "sub/b.md"]
    assert docs[0].text == "plain text file"
    assert "Hello from a PDF" in docs[3].text


def test_single_file(tmp_path: Path) -> None:
    file = tmp_path / "one.txt"
    file.write_text("hello")
    assert load_documents(file) == [Document("hello", "one.txt")]


def test_missing_path_names_it(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match=r"nope' does not exist"):
        load_documents(tmp_path / "nope")


def test_empty_folder_says_what_it_looked_for(tmp_path: Path) -> None:
    (tmp_path / "notes.csv").write_text("x")
    with pytest.raises(DocumentError, match=r"has no documents \(looked for .txt, .md, .pdf"):
        load_documents(tmp_path)


def test_unreadable_pdf_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "broken.pdf").write_bytes(b"this is not a pdf at all")
    with pytest.raises(DocumentError, match=r"broken.pdf' is not a readable PDF"):
        load_documents(tmp_path / "broken.pdf")


def test_bad_jsonl_line_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_text('{"text": "ok"}\n{"title": "no text"}\n')
    with pytest.raises(DocumentError, match=r"line 2: expected an object with a string 'text'"):
        load_documents(tmp_path)
    (tmp_path / "x.jsonl").write_text('{"text": "ok"}\nnot json\n')
    with pytest.raises(DocumentError, match=r"line 2 is not JSON"):
        load_documents(tmp_path)


def test_empty_file_and_unsupported_file(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("   \n")
    with pytest.raises(DocumentError, match=r"empty.txt' has no text"):
        load_documents(tmp_path / "empty.txt")
    (tmp_path / "data.csv").write_text("x")
    with pytest.raises(DocumentError, match=r"unsupported file type '.csv'"):
        load_documents(tmp_path / "data.csv")


def test_non_utf8_text_is_reported(tmp_path: Path) -> None:
    (tmp_path / "latin.txt").write_bytes(b"caf\xe9")
    with pytest.raises(DocumentError, match=r"latin.txt' is not UTF-8"):
        load_documents(tmp_path)


def test_chunking_respects_size_and_numbers_chunks_across_documents() -> None:
    sentence = "The quick brown fox jumps over the lazy dog. "
    docs = [Document(sentence * 20, "a.txt"), Document("# H\n\n" + sentence * 10, "b.md")]
    chunks = chunk_documents(docs, chunk_size=100, chunk_overlap=10)
    assert all(len(c.text) <= 100 for c in chunks)
    assert [c.chunk_id for c in chunks] == list(range(len(chunks)))
    sources = [c.source for c in chunks]
    assert sources == sorted(sources)  # document order is kept
    assert {"a.txt", "b.md"} == set(sources)
    assert len(chunk_documents(docs, chunk_size=400)) < len(chunks)


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (100, 100), (100, -1)])
def test_chunking_rejects_bad_sizes(size: int, overlap: int) -> None:
    with pytest.raises(ValueError, match=r"chunk_"):
        chunk_documents([Document("text", "a")], chunk_size=size, chunk_overlap=overlap)
