"""`primflow index`, `primflow collections` and `primflow run --collection`: bad input
fails with exit code 2 and a message naming it, before any model loads."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from primflow.cli import main
from primflow.collections import CollectionStore, embedding_model_id
from primflow.testing.fakes import FakeEmbedder


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "collections"


def made_collection(root: Path, name: str = "docs", with_documents: bool = True) -> None:
    """A collection made with a fake embedder (the CLI runs its own event loop, so these
    tests are not async)."""
    embedder = FakeEmbedder("embedder", None, latency_scale=0.0)
    collection = CollectionStore(root).create(name, embedding_model=embedding_model_id(embedder))
    if with_documents:
        asyncio.run(collection.add(["Employees get 25 days of paid leave."], embedder))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["index", "samples/docs", "--collection", "My-Docs"], "is not valid: use lowercase"),
        (["index", "nowhere", "--collection", "docs"], "does not exist"),
        (
            ["index", "samples/docs", "--collection", "docs", "--backend", "pgvector"],
            "needs --pgvector DSN",
        ),
    ],
)
def test_index_refuses_bad_input_before_loading_models(
    capsys: pytest.CaptureFixture[str], root: Path, argv: list[str], message: str
) -> None:
    code, _out, err = cli(capsys, *argv, "--collections-dir", str(root))
    assert code == 2 and message in err and err.startswith("primflow index: ")
    assert not root.exists()


def test_index_refuses_an_empty_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, _out, err = cli(capsys, "index", str(tmp_path / "empty"), "--collection", "docs")
    assert code == 2 and "has no documents" in err


def test_collections_lists_shows_and_deletes(
    capsys: pytest.CaptureFixture[str], root: Path
) -> None:
    code, out, _err = cli(capsys, "collections", "--collections-dir", str(root))
    assert code == 0 and "no collections in" in out
    made_collection(root)
    code, out, _err = cli(capsys, "collections", "list", "--collections-dir", str(root))
    assert code == 0 and out.splitlines()[1].split()[:4] == ["docs", "faiss", "1", "1"]
    code, out, _err = cli(capsys, "collections", "show", "docs", "--collections-dir", str(root))
    assert code == 0 and json.loads(out)["sources"] == ["doc-0"]
    code, _out, err = cli(capsys, "collections", "show", "nope", "--collections-dir", str(root))
    assert code == 2 and "no collection 'nope'" in err and "collections: docs" in err
    code, _out, err = cli(capsys, "collections", "delete", "--collections-dir", str(root))
    assert code == 2 and "needs a NAME" in err
    code, out, _err = cli(capsys, "collections", "delete", "docs", "--collections-dir", str(root))
    assert code == 0 and "deleted collection 'docs'" in out
    code, _out, err = cli(capsys, "collections", "delete", "docs", "--collections-dir", str(root))
    assert code == 2 and "no collection 'docs'" in err


def test_run_with_a_collection_refuses_bad_input(
    capsys: pytest.CaptureFixture[str], root: Path
) -> None:
    made_collection(root)
    made_collection(root, "empty", with_documents=False)
    where = ["--collections-dir", str(root)]
    for argv, message in [
        (["naive_rag", "--collection", "missing"], "no collection 'missing'"),
        (["naive_rag", "--collection", "empty"], "collection 'empty' is empty"),
        (["naive_rag", "--collection", "Bad/Name"], "is not valid"),
        (["contextual_retrieval", "--collection", "docs"], "pass documents instead"),
        (["naive_rag"], "pass --docs PATH or --collection NAME"),
    ]:
        code, _out, err = cli(capsys, "run", *argv, "--question", "q?", *where)
        assert code == 2 and message in err, (argv, err)
    with pytest.raises(SystemExit) as exited:
        main(["run", "naive_rag", "--docs", "samples/docs", "--collection", "docs", "-q"])
    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_pgvector_collections_need_the_server(
    capsys: pytest.CaptureFixture[str], root: Path
) -> None:
    from primflow.engines.vector.pgvector_engine import PgVectorEngine

    never_started = PgVectorEngine(dsn="postgresql://nowhere/db")
    CollectionStore(root, pgvector=never_started).create(
        "pg_docs", embedding_model="m", backend="pgvector"
    )
    where = ["--collections-dir", str(root)]
    code, _out, err = cli(capsys, "collections", "delete", "pg_docs", *where)
    assert code == 2 and "is stored in PostgreSQL: pass --pgvector" in err
    assert CollectionStore(root).exists("pg_docs")


def test_run_with_pgvector_builds_its_vector_index_on_that_server() -> None:
    import argparse

    from primflow.commands.console import _factory
    from primflow.engines.base import EngineKind
    from primflow.engines.placement import CoreBudget
    from primflow.engines.vector.pgvector_engine import PgVectorEngine

    build = _factory(argparse.Namespace(pgvector="postgresql://nowhere/db"))
    engine = build("vector_index", EngineKind.VECTOR_INDEX, CoreBudget(1), None)
    assert isinstance(engine, PgVectorEngine) and engine.dsn == "postgresql://nowhere/db"
