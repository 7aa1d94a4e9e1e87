# Two commands on a fresh clone: `make demo` and `make test`.
# Everything installs from the committed uv.lock into .venv; uv itself is pinned and
# bootstrapped into .tools with the system Python's pip.

PYTHON     ?= python3
UV_VERSION := 0.13.9
TOOLS      := .tools
UV         := $(TOOLS)/bin/uv
VENV       := .venv
BIN        := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: venv lint typecheck unit test demo bench docs browser-deps clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --locked --python $(PYTHON) --quiet
	touch $@

venv: $(VENV)/.synced

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest

test: lint typecheck unit docs

demo: venv
	$(BIN)/python dev/demo.py

bench: venv
	$(BIN)/python dev/bench.py

docs: venv
	$(BIN)/sphinx-build -W --keep-going -b html -q docs docs/_build/html

# Debian's Chromium for the connection-form browser test (needs root; CI runs as root).
browser-deps:
	@if [ -x /usr/bin/chromium ]; then echo "chromium: $$(/usr/bin/chromium --version)"; \
	else apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	  --no-install-recommends chromium >/dev/null && /usr/bin/chromium --version; fi

clean:
	rm -rf $(VENV) $(TOOLS) docs/_build
