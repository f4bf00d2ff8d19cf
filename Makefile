# The README's two commands live here: `make demo` (set up + the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= ../shared/datasets/fer2013.zip
PRESET ?= default
RUN ?= runs/$(PRESET)
EPOCHS ?=
CAMERA ?=
PYTEST_ARGS ?=
EDGE_VENV ?= .venv-edge

.PHONY: setup demo train test lint bench system-deps clean

# The dev extra pulls in train + deploy + edge, so one venv serves every command and test.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/.installed

# The device's view: the edge extra only (no keras/jax/tensorflow), plus the demo's broker.
$(EDGE_VENV)/bin/.installed: pyproject.toml
	test -x $(EDGE_VENV)/bin/python || $(PYTHON) -m venv $(EDGE_VENV)
	$(EDGE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(EDGE_VENV)/bin/python -m pip install --quiet -e '.[edge,demo]'
	touch $@

demo: $(EDGE_VENV)/bin/.installed
	$(EDGE_VENV)/bin/yuzug-edge demo $(if $(CAMERA),--camera $(CAMERA))

train: setup
	$(BIN)/yuzug-train run $(DATA) --preset $(PRESET) --out $(RUN) $(if $(EPOCHS),--epochs $(EPOCHS))

system-deps:
	scripts/install-system-deps.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: setup system-deps lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(EDGE_VENV) runs .pytest_cache .ruff_cache
