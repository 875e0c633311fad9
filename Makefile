# The two commands of a fresh machine: `make serve` and `make test`.
# Both create .venv if missing and (re)install the project when pyproject.toml changed.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
ARGS ?=

.PHONY: serve test lint typecheck peers proto docs clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

serve: $(STAMP)
	$(BIN)/watchkeeper serve $(ARGS)

# Debian packages used as reference peers by tests and benchmarks (installed when missing).
peers:
	@scripts/install-peers.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) peers lint typecheck
	$(BIN)/pytest

proto: $(STAMP)
	cd src/watchkeeper/ingest/proto && ../../../../$(BIN)/python -m grpc_tools.protoc -I. \
		--python_out=. --pyi_out=. remote.proto remote_decode.proto

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

docs: $(STAMP)
	$(BIN)/python scripts/gen_docs.py
