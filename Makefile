# The README's two commands: `make demo` and `make test`. Nothing else needs installing by hand.
PYTHON ?= python3
VENV := .venv
LS_VENV := .venvs/labelstudio
LS_VERSION := 1.23.2
export LS_LLMTRACE_HOME ?= $(CURDIR)/.ls-llmtrace

.PHONY: setup demo down test test-unit test-integration lint clean browser-setup test-browser

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

# The browser tests drive Label Studio's labeling UI in Debian's headless Chromium (issue 3).
browser-setup:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		apt-get update && apt-get install -y chromium chromium-driver; fi

setup: $(VENV)/.installed $(LS_VENV)/.installed browser-setup

demo: setup
	$(VENV)/bin/ls-llmtrace demo

down:
	-$(VENV)/bin/ls-llmtrace down

test: setup
	$(VENV)/bin/python -m pytest

test-unit: $(VENV)/.installed
	$(VENV)/bin/python -m pytest tests/unit

test-browser: setup
	$(VENV)/bin/python -m pytest -m browser tests/integration

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests backend bench examples
	$(VENV)/bin/mypy

clean: down
	rm -rf $(VENV) .venvs .ls-llmtrace
