# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.optiscope-installed
DEMO_STAMP := $(VENV)/.optiscope-demo
# The tests cover every integration, so they install every extra (torch stays pinned); the demo
# needs only matplotlib, for the report's figures.
EXTRAS ?= dev,report,tensorboard,lightning,hf
DEMO_EXTRAS ?= report
CHROMIUM ?= /usr/bin/chromium
# The model matrix (tests/models, docs/models.md) runs in its own environment: torchvision's wheel
# loads only beside the torch it was built for (2.14.1, constraints-models.txt), and .venv keeps
# torch 2.13.0. The demo never builds it.
MODELS_VENV ?= .models-venv
MODELS_BIN := $(MODELS_VENV)/bin
MODELS_TORCH ?= torch==2.14.1 torchvision==0.29.1
MODELS_EXTRAS ?= dev,hf,lightning,report,models
MODELS_STAMP := $(MODELS_VENV)/.optiscope-installed

.PHONY: install browser demo test lint format bench clean models-install test-models

$(DEMO_STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq "$(TORCH)"
	$(BIN)/python -m pip install -qq -c constraints.txt -e ".[$(DEMO_EXTRAS)]"
	touch $(DEMO_STAMP)

# The full install covers the demo's too.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq "$(TORCH)"
	$(BIN)/python -m pip install -qq -c constraints.txt -e ".[$(EXTRAS)]"
	touch $(STAMP) $(DEMO_STAMP)

install: $(STAMP)

# torch and torchvision first, as a pair; then optiscope and the rest with them kept.
$(MODELS_STAMP): pyproject.toml constraints-models.txt
	test -x $(MODELS_BIN)/python || $(PYTHON) -m venv $(MODELS_VENV)
	$(MODELS_BIN)/python -m pip install -qq $(MODELS_TORCH)
	$(MODELS_BIN)/python -m pip install -qq -c constraints-models.txt -e ".[$(MODELS_EXTRAS)]"
	touch $(MODELS_STAMP)

models-install: $(MODELS_STAMP)

# The report's browser test opens it in Debian's Chromium (Playwright drives it, from the dev extra).
browser:
	@test -x $(CHROMIUM) || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
		{ echo "make: cannot install Debian's chromium (needs root and apt-get)" >&2; exit 1; }

demo: $(DEMO_STAMP)
	$(BIN)/optiscope diagnose

lint: install
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy
	$(BIN)/lint-imports

# The main suite in .venv, without tests/models (so the matrix runs once), then the matrix in
# .models-venv.
test: lint browser
	OPTISCOPE_REQUIRE_BROWSER=1 $(BIN)/python -m pytest -q --ignore=tests/models
	$(MAKE) --no-print-directory test-models

# A row whose library is missing fails here rather than being skipped.
test-models: $(MODELS_STAMP)
	OPTISCOPE_REQUIRE_MODELS=1 $(MODELS_BIN)/python -m pytest -q tests/models

format: install
	$(BIN)/ruff format src tests benchmarks examples
	$(BIN)/ruff check --fix src tests benchmarks examples

bench:
	bash benchmarks/setup_env.sh
	.bench-venv/bin/python benchmarks/curvature.py
	.bench-venv/bin/python benchmarks/monitor.py
	.bench-venv/bin/python benchmarks/landscape.py
	.bench-venv/bin/python benchmarks/long_run.py

clean:
	rm -rf $(VENV) $(MODELS_VENV) .bench-venv .pytest_cache .ruff_cache
