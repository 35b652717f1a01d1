# Two commands do all the set-up on a fresh machine (see README):
#   make demo   install, index the bundled sample articles (examples/), serve the web chat on 127.0.0.1:7860
#   make test   install, then lint, type-check and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A CPU-only torch. Here pip finds it in a local wheel folder; elsewhere run e.g.
#   make demo TORCH_INDEX=--index-url=https://download.pytorch.org/whl/cpu
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
INDEX_DIR ?= .rag
HOST ?= 127.0.0.1
PORT ?= 7860

# Nothing may reach for a model hub or phone home at run time.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export GRADIO_ANALYTICS_ENABLED := False
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test test-fast lint bench train-reader clean

# torch goes in first, so sentence-transformers' bare `torch` requirement is already met and
# pip never pulls the registry's newest torch with gigabytes of CUDA wheels. The default encoder
# runs an ONNX export of the bundled model, made last (about 15 s, cached in
# ~/.cache/rag-articles/onnx) so that no first question waits for it.
$(BIN)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_INDEX) "$(TORCH)"
	$(BIN)/pip install --quiet -e .
	$(BIN)/python -m embeddings.onnx_export
	touch $@

# Tests also need the dev tools and the llm extra: llama-cpp-python compiles from source
# (about 5 minutes the first time; pip caches the wheel after that). The browser test uses
# Debian's chromium, installed here when missing (this needs root, as on these machines).
$(BIN)/.installed-test: $(BIN)/.installed
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/pip install --quiet -e ".[dev,llm,scale]"
	command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium)
	touch $@

demo: $(BIN)/.installed
	$(BIN)/rag index examples/articles examples/news examples/stories --index-dir $(INDEX_DIR)
	$(BIN)/rag serve --index-dir $(INDEX_DIR) --host $(HOST) --port $(PORT)

lint: $(BIN)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Test files run in parallel (pytest-xdist), each file whole on one worker, so a file's servers
# and shared indexes start once. Two workers suit 2 cores; more cores: make test WORKERS=4.
WORKERS ?= 2
PYTEST := $(BIN)/pytest -q -n $(WORKERS) --dist loadfile

test: lint
	$(PYTEST)

# While working: the tests that start no server, no `rag` process and no real model (under a
# minute on 2 cores). `make test` runs them all.
test-fast: $(BIN)/.installed-test
	$(PYTEST) -m "not slow"

# Train the reader again from the bundled MiniLM weights (about 45 minutes on 2 cores; the
# shipped weights in embeddings/reader/model came from exactly this). DATASETS: a folder of
# SQuAD-format JSON sets.
train-reader: $(BIN)/.installed
	$(BIN)/python -m eval.train_reader $(if $(DATASETS),--datasets $(DATASETS))

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_index.py

clean:
	rm -rf $(VENV) $(INDEX_DIR) .pytest_cache .mypy_cache .ruff_cache
