#!/usr/bin/env bash
# Refreshes requirements.lock, the exact versions of every dependency (all extras) that
# `make install` and CI install: a fresh temporary venv installs primflow with the newest
# versions pyproject.toml's ranges allow, and its `pip freeze` becomes the lock.
# Review `git diff requirements.lock` and run `make test` before committing it.
# LOCK_CONSTRAINTS=FILE resolves under those constraints instead (e.g. to add a new
# dependency while keeping every other version).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
py="$tmp/venv/bin/python"
pip=("$py" -m pip --quiet --disable-pip-version-check)
"${pip[@]}" install --upgrade pip
wheel=$(PYTHON="$py" scripts/build_llama_wheel.sh)
"${pip[@]}" install "$wheel"
constraints=()
[ -n "${LOCK_CONSTRAINTS:-}" ] && constraints=(-c "$LOCK_CONSTRAINTS")
"${pip[@]}" install "${constraints[@]}" ".[dev,docs,engines,remote,serve,trace,explain,browser,ray,phoenix]"
llama=$("$py" -c "import importlib.metadata as m; print(m.version('llama-cpp-python'))")
{
  echo "# Exact versions for make install and CI (pip constraints; pyproject.toml has ranges)."
  echo "# Regenerate with scripts/update_lock.sh; see CONTRIBUTING.md, \"Dependencies\"."
  "$py" -m pip freeze --disable-pip-version-check --exclude primflow --exclude pip \
    | sed "s|^llama[-_]cpp[-_]python @ .*|llama-cpp-python==$llama|"
} > requirements.lock
echo "wrote requirements.lock ($(grep -vc '^#' requirements.lock) packages)"
