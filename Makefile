# The README's two commands live here: `make train` (set up + the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= ../shared/datasets/fer2013.zip
PRESET ?= default
RUN ?= runs/$(PRESET)
EPOCHS ?=
PYTEST_ARGS ?=

.PHONY: setup train test lint system-deps clean

# The dev extra pulls in train + deploy + edge, so one venv serves every command and test.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/.installed

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
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
