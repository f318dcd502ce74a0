VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export RAY_AUTH_MODE := disabled
# mkdocs-material prints a banner about MkDocs 2 on every build.
export NO_MKDOCS_2_WARNING := 1
LINT_PATHS := primflow tests bench docs/gen_graphs.py docs/examples

.PHONY: install install-test hooks run test unit lint docs

install:
	@VENV=$(VENV) scripts/install.sh
	@$(MAKE) --no-print-directory hooks

# The test run's install adds the phoenix extra (an OpenTelemetry backend for one test).
install-test:
	@VENV=$(VENV) EXTRAS=dev,docs,engines,remote,serve,trace,explain,browser,ray,phoenix scripts/install.sh
	@$(MAKE) --no-print-directory hooks

# The git hooks (.pre-commit-config.yaml), only in a git work tree and never in CI; a
# failure here never fails the build.
hooks:
	@if [ "$${CI:-}" != "true" ] && git rev-parse --is-inside-work-tree >/dev/null 2>&1 \
	  && [ -x $(BIN)/pre-commit ] && ! [ -f "$$(git rev-parse --git-path hooks)/pre-commit" ]; then \
	  $(BIN)/pre-commit install >/dev/null 2>&1 && echo "installed the pre-commit hooks" \
	  || echo "pre-commit hooks not installed (run: $(BIN)/pre-commit install)"; \
	fi

run: install
	$(BIN)/primflow run naive_rag --docs samples/docs --question "What does the paper report about end-to-end speedup?"

test: install-test lint docs
	$(BIN)/python -m pytest

unit: install
	$(BIN)/python -m pytest -m "not engines and not e2e and not pg and not ray"

lint: install
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy primflow

docs: install
	$(BIN)/mkdocs build --strict
