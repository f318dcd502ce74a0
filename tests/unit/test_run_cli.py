"""`primflow run`: argument handling and bad input, checked before any model loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from primflow.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Exit code and stderr of `primflow run ARGV` (these all fail before loading models)."""
    code = main(["run", *argv])
    return code, capsys.readouterr().err


def test_missing_path_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    code, err = run_cli(capsys, "naive_rag", "--docs", str(missing), "--question", "q?")
    assert code == 2
    assert "does not exist" in err and str(missing) in err


def test_empty_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "notes.csv").write_text("a,b\n")
    code, err = run_cli(capsys, "naive_rag", "--docs", str(tmp_path), "--question", "q?")
    assert code == 2
    assert "has no documents" in err


def test_unknown_app_lists_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(capsys, "fancy_rag", "--docs", "samples/docs", "--question", "q?")
    assert code == 2
    assert "unknown app 'fancy_rag'" in err and "naive_rag" in err


def test_unreadable_pdf(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    broken = tmp_path / "report.pdf"
    broken.write_bytes(b"this is not a pdf at all")
    code, err = run_cli(capsys, "naive_rag", "--docs", str(broken), "--question", "q?")
    assert code == 2
    assert "report.pdf" in err and "not a readable PDF" in err


def test_document_app_needs_docs(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(capsys, "naive_rag", "--question", "q?")
    assert code == 2
    assert "--docs" in err


def test_questions_file_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    docs = tmp_path / "a.txt"
    docs.write_text("Some text.")
    code, err = run_cli(
        capsys, "naive_rag", "--docs", str(docs), "--questions", str(tmp_path / "q.jsonl")
    )
    assert code == 2 and "questions file" in err and "does not exist" in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "ok?"}\n{"nope": 1}\n')
    code, err = run_cli(capsys, "naive_rag", "--docs", str(docs), "--questions", str(bad))
    assert code == 2 and "line 2" in err and "'question'" in err


def test_bad_max_tokens(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    docs = tmp_path / "a.txt"
    docs.write_text("Some text.")
    code, err = run_cli(
        capsys, "naive_rag", "--docs", str(docs), "--question", "q?", "--max-tokens", "0"
    )
    assert code == 2 and "--max-tokens" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["naive_rag", "--docs", "x"],  # neither --question nor --questions
        ["naive_rag", "--question", "a", "--questions", "f"],  # both
        ["naive_rag", "--question", "a", "--scheme", "fastest"],
        ["naive_rag", "--question", "a", "--placement", "everywhere"],
    ],
)
def test_argparse_rejects(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", *argv])
    assert exc.value.code == 2


def test_read_questions_accepts_plain_and_jsonl(tmp_path: Path) -> None:
    from primflow.commands.run_inputs import read_questions

    path = tmp_path / "q.txt"
    path.write_text('first question?\n\n{"question": "second?", "source": "x.md"}\n')
    assert read_questions(str(path)) == ["first question?", "second?"]


def test_bad_cores(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    docs = tmp_path / "a.txt"
    docs.write_text("Some text.")
    code, err = run_cli(
        capsys, "naive_rag", "--docs", str(docs), "--question", "q?", "--cores", "0"
    )
    assert code == 2 and "--cores must be >= 1, got 0" in err


def test_bench_rejects_bad_counts_and_rates(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--fake", "--cores", "0"]) == 2
    assert "--cores" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "--fake", "--rates", "0.5,-1"])
    assert "rates must be > 0" in capsys.readouterr().err


def test_bench_rates_none_means_single_queries_only() -> None:
    from primflow.commands.bench import _rates

    assert _rates("none") == []
    assert _rates("2, 0.5") == [0.5, 2.0]
