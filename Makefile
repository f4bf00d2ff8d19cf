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

.PHONY: setup demo train student learning-curve test lint bench soak system-deps clean

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

# The shipped recipe: angry/happy/sad plus a "none" class learnt from the neutral faces, so the
# daemon can say "none of these". TRAIN_ARGS= (empty) trains the plain three-way classifier.
TRAIN_ARGS ?= --other-label none --other-classes neutral
# tcmalloc (Debian libtcmalloc-minimal4) makes CPU epochs faster under JAX; used when installed.
train: setup
	scripts/install-system-deps.sh train
	LD_PRELOAD=$$(ls /usr/lib/*/libtcmalloc_minimal.so.4 2>/dev/null | head -n 1) $(BIN)/yuzug-train run $(DATA) --preset $(PRESET) --out $(RUN) $(TRAIN_ARGS) $(if $(EPOCHS),--epochs $(EPOCHS))

# The shipped model (models/default): two teachers, then the all-others teacher fine-tuned
# towards the pair by distillation (--init-from; the kept epoch is the best 4-way validation
# accuracy). About 4.5 hours on 2 CPU cores; the teachers are reused when already trained.
STUDENT ?= runs/student
student: setup
	scripts/install-system-deps.sh train
	test -f runs/default-none/model.keras || $(MAKE) train RUN=runs/default-none EPOCHS=45
	test -f runs/none-all-others/model.keras || $(MAKE) train RUN=runs/none-all-others EPOCHS=32 TRAIN_ARGS='--other-label none'
	mkdir -p $(STUDENT) && cp runs/none-all-others/data.npz runs/none-all-others/prepare_report.json $(STUDENT)/
	LD_PRELOAD=$$(ls /usr/lib/*/libtcmalloc_minimal.so.4 2>/dev/null | head -n 1) $(BIN)/yuzug-train fit --run $(STUDENT) --preset default --seed 1337 --epochs 10 --learning-rate 0.0003 --teacher runs/default-none --teacher runs/none-all-others --distill-weight 0.9 --init-from runs/none-all-others
	for step in calibrate export evaluate; do $(BIN)/yuzug-train $$step --run $(STUDENT) || exit 1; done

# How much more faces would buy (bench/learning_curve.py): the recipe on nested shares of the
# train faces, then the accuracy per doubling and the faces a target would take. CURVE_SAME=steps
# gives each share the optimizer steps of CURVE_EPOCHS epochs on all the faces (about 100
# minutes on 2 CPU cores); CURVE_SAME=epochs gives each CURVE_EPOCHS epochs, each face seen as
# often (about 50). Shares already trained in CURVE_OUT are reused. CURVE_ARGS: more `yuzug-train
# run` options for every share.
CURVE_FRACTIONS ?= 0.125 0.25 0.5 1
CURVE_EPOCHS ?= 14
CURVE_SAME ?= steps
CURVE_OUT ?= runs/curve-$(CURVE_SAME)
CURVE_ARGS ?=
learning-curve: setup
	case "$(CURVE_SAME)" in steps|epochs) ;; *) echo "CURVE_SAME must be steps or epochs" >&2; exit 2;; esac
	for share in $(CURVE_FRACTIONS); do \
	  epochs=$$($(BIN)/python -c "print(max(1, round($(CURVE_EPOCHS) / ($$share if '$(CURVE_SAME)' == 'steps' else 1))))") || exit 1; \
	  test -f $(CURVE_OUT)/$$share/bundle/manifest.json || $(MAKE) train RUN=$(CURVE_OUT)/$$share EPOCHS=$$epochs TRAIN_ARGS="--train-fraction $$share $(CURVE_ARGS)" || exit 1; \
	done
	$(BIN)/python bench/learning_curve.py --data $(DATA) $(foreach share,$(CURVE_FRACTIONS),--model $(CURVE_OUT)/$(share)/bundle) --json $(CURVE_OUT)/curve.json --plot $(CURVE_OUT)/curve.png

# Benchmarks (not tests): figures for the README and issue notes. BENCH_OUT keeps the JSON.
BENCH_OUT ?= runs/bench
bench: setup $(EDGE_VENV)/bin/.installed system-deps
	mkdir -p $(BENCH_OUT)
	$(BIN)/python bench/accuracy.py --data $(DATA) --model models/default $(if $(wildcard runs/seed/bundle),--model runs/seed/bundle) --peer fer --json $(BENCH_OUT)/accuracy.json --plot $(BENCH_OUT)/min-confidence.png
	$(BIN)/python bench/robustness.py --data $(DATA) --peer fer --json $(BENCH_OUT)/robustness.json --plot $(BENCH_OUT)/robustness.png
	$(BIN)/python bench/pipeline.py --data $(DATA) --json $(BENCH_OUT)/pipeline.json
	$(BIN)/python bench/lean.py --data $(DATA) --json $(BENCH_OUT)/lean.json --plot $(BENCH_OUT)/lean.png
	$(BIN)/python bench/orientation.py --data $(DATA) --json $(BENCH_OUT)/orientation.json
	$(BIN)/python bench/framing.py --data $(DATA) --json $(BENCH_OUT)/framing.json
	$(BIN)/python bench/personalize.py --data $(DATA) --json $(BENCH_OUT)/personalize.json
	$(BIN)/python bench/daemon.py --python $(EDGE_VENV)/bin/python --data $(DATA) --json $(BENCH_OUT)/daemon.json
	$(BIN)/python bench/deploy_push.py --json $(BENCH_OUT)/deploy.json
	$(BIN)/python bench/spool.py --json $(BENCH_OUT)/spool.json

soak: setup $(EDGE_VENV)/bin/.installed system-deps
	mkdir -p $(BENCH_OUT)
	$(BIN)/python bench/soak.py --python $(EDGE_VENV)/bin/python --data $(DATA) --json $(BENCH_OUT)/soak.json

system-deps:
	scripts/install-system-deps.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy edge deploy trainer bench

test: setup system-deps lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(EDGE_VENV) runs .pytest_cache .ruff_cache
