# segany: the two commands a new machine needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
APP    := src/segany/server/static/app/.built
# torch comes first and pinned: this release (and its torchvision) installs from local
# disk on our machines; a bare `torch` could pull a multi-GB build.
TORCH  := torch==2.14.1
TORCHVISION := torchvision==0.29.1

.PHONY: demo test test-all lint typecheck unit unit-all bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.runtime: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[server]'
	touch $@

$(VENV)/.test: $(VENV)/.runtime web/node_modules/.installed $(APP)
	$(BIN)/pip install -q $(TORCH) $(TORCHVISION)
	$(BIN)/pip install -q -e '.[test]'
	touch $@

# The browser side (onnxruntime-web, the annotation page), pinned by package-lock.json.
web/node_modules/.installed: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The annotation page, built into the package (segany serve serves it at /app/): only
# building needs Node.js, running segany does not.
$(APP): web/node_modules/.installed web/build.mjs $(wildcard web/src/*.js web/app/*)
	cd web && node build.mjs ../src/segany/server/static/app

demo: $(VENV)/.runtime
	$(BIN)/python examples/demo.py --out demo_output

lint: $(VENV)/.test
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: $(VENV)/.test
	$(BIN)/mypy

# One pytest-xdist worker per core (tests/conftest.py gives each one torch thread and
# puts the files with the most slow tests first); whole files go to one worker, so that
# module fixtures are built once.
JOBS ?= auto

unit: $(VENV)/.test
	$(BIN)/python -m pytest -n $(JOBS) --dist loadfile --no-loadscope-reorder

# Everything, the long checks marked `full` too (ViT-B equivalence, stage ablations,
# many-scene evaluations).
unit-all: $(VENV)/.test
	$(BIN)/python -m pytest -n $(JOBS) --dist loadfile --no-loadscope-reorder -m "full or not full"

test: lint typecheck unit

test-all: lint typecheck unit-all

bench: $(VENV)/.test
	$(BIN)/python benchmarks/bench_predictor.py

clean:
	rm -rf $(VENV) demo_output .pytest_cache .mypy_cache .ruff_cache web/node_modules
