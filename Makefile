# The README's two commands: `make demo` and `make test`. Nothing else needs installing by hand.
PYTHON ?= python3
VENV := .venv
LS_VENV := .venvs/labelstudio
LS_VERSION := 1.23.2
export LS_LLMTRACE_HOME ?= $(CURDIR)/.ls-llmtrace

.PHONY: setup system-packages demo down test test-unit test-browser bench bench-scale stress lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

# Label Studio is a separate server with its own pins: its own virtualenv.
$(LS_VENV)/.installed:
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install --quiet --upgrade pip
	$(LS_VENV)/bin/pip install --quiet 'label-studio==$(LS_VERSION)'
	touch $@

# Arize Phoenix, the tracing tool the Phoenix connector talks to: a separate server with
# its own pins, in its own virtualenv (the connector tests start it).
PHOENIX_VENV := .venvs/phoenix
$(PHOENIX_VENV)/.installed:
	$(PYTHON) -m venv $(PHOENIX_VENV)
	$(PHOENIX_VENV)/bin/pip install --quiet --upgrade pip
	$(PHOENIX_VENV)/bin/pip install --quiet 'arize-phoenix>=12,<21' 'openinference-instrumentation-openai<1' 'openai>=1.40' 'opentelemetry-exporter-otlp-proto-http>=1.25,<2'
	touch $@

# MLflow, the tracking server the MLflow connector talks to (MLflow 3 tracing), in its own
# virtualenv with what the connector test's instrumented app needs: MLflow's own OpenAI
# autologging and the OpenAI SDK, run against the local fake provider.
MLFLOW_VENV := .venvs/mlflow
$(MLFLOW_VENV)/.installed:
	$(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/pip install --quiet --upgrade pip
	$(MLFLOW_VENV)/bin/pip install --quiet 'mlflow>=3.4,<4' 'openai>=1.40,<3'
	touch $@

# Debian packages the tests need, installed only when missing, with one `apt-get update`:
# PostgreSQL (the store tests run on it too) and Chromium + ChromeDriver (the browser tests
# open Label Studio's labeling UI).
system-packages:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	[ -x /usr/bin/chromedriver ] || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; fi

# The promptfoo CLI (npm), pinned by tools/promptfoo/package-lock.json, for the test that
# runs a golden set's promptfoo export; installed beside its lock file, once.
PROMPTFOO_DIR := tools/promptfoo
$(PROMPTFOO_DIR)/node_modules/.installed: $(PROMPTFOO_DIR)/package-lock.json
	cd $(PROMPTFOO_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.installed $(LS_VENV)/.installed $(PHOENIX_VENV)/.installed $(MLFLOW_VENV)/.installed \
	system-packages \
	$(PROMPTFOO_DIR)/node_modules/.installed

# The demo needs neither PostgreSQL nor Chromium.
demo: $(VENV)/.installed $(LS_VENV)/.installed
	$(VENV)/bin/ls-llmtrace demo

down:
	-$(VENV)/bin/ls-llmtrace down

test: setup
	$(VENV)/bin/python -m pytest

test-unit: $(VENV)/.installed
	$(VENV)/bin/python -m pytest tests/unit

# The slow full-size runs (e.g. the whole HaluEval loop), excluded from `make test`.
stress: setup
	$(VENV)/bin/python -m pytest -m stress tests

test-browser: setup
	$(VENV)/bin/python -m pytest -m browser tests/integration

# Speed, as ratios against a baseline measured in the same run (never in timed tests).
# Every benchmark, one table of ratios: bench/results/latest.md (+ .json) and the README.
bench: $(VENV)/.installed $(LS_VENV)/.installed
	$(VENV)/bin/python bench/run_all.py

# The import and the idle/incremental syncs at 1k, 10k and 50k (about half an hour).
bench-scale: $(VENV)/.installed $(LS_VENV)/.installed
	$(VENV)/bin/python bench/run_all.py --scale

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests backend bench examples
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

clean: down
	rm -rf $(VENV) .venvs .ls-llmtrace
