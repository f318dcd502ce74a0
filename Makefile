VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export RAY_AUTH_MODE := disabled

.PHONY: install run test unit lint

install:
	@VENV=$(VENV) scripts/install.sh

run: install
	$(BIN)/primflow run naive_rag --docs samples/docs --question "What does the paper report about end-to-end speedup?"

test: install lint
	$(BIN)/python -m pytest

unit: install
	$(BIN)/python -m pytest -m "not engines and not e2e and not pg"

lint: install
	$(BIN)/ruff check primflow tests bench
	$(BIN)/ruff format --check primflow tests bench
	$(BIN)/mypy primflow
