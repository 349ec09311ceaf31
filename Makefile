SHELL := /bin/bash
# danceba: two commands on a fresh clone.
#   make run   - set up, then `dvc repro` the whole chain on the embedded mini dataset
#   make test  - set up, then lint + the test suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
PLAYER := danceba/player
PLAYER_STAMP := $(PLAYER)/node_modules/.installed

# Offline, quiet, fast (see ../shared/ecosystem-notes.md).
export PATH := $(BIN):$(PATH)
export NUMBA_CACHE_DIR := $(CURDIR)/.cache/numba
export DO_NOT_TRACK := true
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 120
export PREFECT_HOME := $(CURDIR)/.prefect
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# SEEDS (seeds per configuration): default 5 for `make sweep`, 3 for `make ablation` (set below).
# JOBS (experiments at once, default cores // compute.threads) and VARIANTS (ablation only, comma list,
# default all) are optional; to run 2 at once on 2 cores set compute.threads: 1 (results depend on it).
CONFIG ?= embedded
JOBS_ARG = $(if $(JOBS),--jobs $(JOBS))

.PHONY: setup run test lint format bench bench-scale sweep ablation reproduce-check ui config clean browser player-screenshot gpu-check gpu-deps

setup: $(STAMP) $(PLAYER_STAMP)

# Idempotent: reinstalls only when the lock file or pyproject.toml changed.
$(STAMP): requirements-lock.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements-lock.txt 2> >(grep -v "is ignored: it is neither" >&2)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e . 2> >(grep -v "is ignored: it is neither" >&2)
	touch $(STAMP)

# three.js for `danceba view`, exactly as danceba/player/package-lock.json pins it (nothing is fetched at run time).
$(PLAYER_STAMP): $(PLAYER)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd $(PLAYER) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else \
		echo "make setup: npm not found; \`danceba view\` needs $(PLAYER)/node_modules (install Node.js and npm, then make setup)"; \
	fi

# Debian's chromium for the headless-browser tests of tests/test_viewer.py (skipped, with the reason, without it).
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "make browser: installing Debian's chromium with apt-get"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null) \
			|| echo "make browser: apt-get could not install chromium; the browser tests will be skipped"; \
	else \
		echo "make browser: /usr/bin/chromium is absent and cannot be installed (needs root and apt-get); the browser tests will be skipped"; \
	fi

run: setup
	$(BIN)/dvc repro

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint browser
	$(BIN)/python -m pytest -q

# docs/player.png: `danceba view data/generated/model data/generated/random_codes` in headless chromium (after make run).
player-screenshot: setup browser
	$(BIN)/python -m tests.test_viewer docs/player.png data/generated/model data/generated/random_codes

bench: setup
	mkdir -p bench/out
	$(BIN)/python -m bench.bench_features --out bench/out/features.json
	$(BIN)/python -m bench.bench_metrics --out bench/out/metrics.json
	$(BIN)/python -m bench.bench_mamba_scan --out bench/out/mamba_scan.json
	$(BIN)/python -m bench.bench_generate --size small --threads 1 --out bench/out/generate.json
	$(BIN)/python -m bench.bench_generate --size paper --stacks danceba --batches 1 40 --exact-batches 1 --precisions float32 bfloat16 --threads 2 --out bench/out/generate_paper.json
	$(BIN)/python -m bench.bench_train --out bench/out/train.json
	test -f data/models/gpt.pt && $(BIN)/python -m bench.bench_decode_agreement --out bench/out/decode_agreement.json || echo "bench_decode_agreement: skipped (run make run first: it needs data/models)"
	test -f data/models/gpt.pt && $(BIN)/python -m bench.bench_long_song --minutes 5 --out bench/out/long_song.json || echo "bench_long_song: skipped (run make run first: it needs data/models)"
	$(MAKE) bench-scale

# AIST++ scale (configs/scale.yaml) in a temporary folder: fetch, joints, music_features, gt_features, evaluate stage by stage
# (seconds, peak memory), and tokenize at the paper's VQ-VAE size on TOKENIZE_LIMIT sequences (0 = all),
# extrapolated to all, and train_vqvae at the paper's size for VQVAE_STEPS steps per phase (0 = skip).
# FRACTION=0.05 for a quick look (bench/bench_scale.py).
FRACTION ?= 1
TOKENIZE_LIMIT ?= 50
VQVAE_STEPS ?= 3
bench-scale: setup
	mkdir -p bench/out
	$(BIN)/python -m bench.bench_scale --fraction $(FRACTION) --tokenize --tokenize-limit $(TOKENIZE_LIMIT) \
		--train-vqvae-steps $(VQVAE_STEPS) --out bench/out/scale.json

# One prepared GPU check (bench/gpu_check.py: parity of every CUDA path, paper-size steps, generation, a
# short training run; one JSON). For a CUDA machine with PyTorch and Triton and no network: no venv, the
# system python3 (GPU_PYTHON), and mambapy, the one model dependency such images lack (pure Python), from
# .gpu_deps/ (`make gpu-deps` first, where pip reaches the index, and bring the folder along).
# On CPU: `make gpu-check GPU_CHECK_ARGS=--dry-run` (tiny sizes, seconds; tests/test_gpu_check.py runs it).
GPU_PYTHON ?= python3
gpu-check:
	mkdir -p bench/out
	PYTHONPATH=$(CURDIR)/.gpu_deps:$(CURDIR) $(GPU_PYTHON) -m bench.gpu_check --out bench/out/gpu_check.json $(GPU_CHECK_ARGS)

gpu-deps:
	$(PYTHON) -m pip install --quiet --no-deps --target .gpu_deps mambapy==1.2.0

# Seed sweep (Prefect flow; each seed a DVC experiment and an MLflow child run).
sweep: SEEDS ?= 5
sweep: setup
	$(BIN)/python -m pipelines.flows sweep --seeds $(SEEDS) $(JOBS_ARG)

# The paper's ablation (danceba/ablation.py): every variant x SEEDS, each a DVC experiment and an MLflow
# child run; reports/ablation.md. E.g. make ablation SEEDS=5 VARIANTS=danceba,no_pre JOBS=1
ablation: SEEDS ?= 3
ablation: setup
	$(BIN)/python -m pipelines.flows ablation --seeds $(SEEDS) $(JOBS_ARG) $(if $(VARIANTS),--variants $(VARIANTS))

# The chain twice from scratch in temporary copies of the working tree, every output compared bit for
# bit (pipelines/reproduce_check.py); PARAMS=file to run another params file in both copies.
reproduce-check: setup
	$(BIN)/python -m pipelines.reproduce_check --out reports/reproduce_check.json $(if $(PARAMS),--params $(PARAMS))

# The MLflow UI on the project's SQLite store.
ui: setup
	$(BIN)/mlflow ui --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///$(CURDIR)/mlflow.db

# The DVC metrics one per line (danceba/metrics_view.py; `dvc metrics show` prints one very wide row per
# file). GREP=regex keeps matching keys, e.g. make metrics GREP='bailando\.model\.(bas|fid_k)$'
.PHONY: metrics
metrics: setup
	$(BIN)/python -m danceba.metrics_view $(if $(GREP),--grep '$(GREP)')

# Switch params.yaml to a named configuration in configs/ (embedded | paper | scale).
config: setup
	$(BIN)/python -m danceba.configs $(CONFIG)

clean:
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache $(PLAYER)/node_modules
