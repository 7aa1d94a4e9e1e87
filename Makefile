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

.PHONY: venv lint typecheck pytest test test-airflow demo demo-distributed bench \
	bench-scaling docs browser-deps distributed-deps azurite clean

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
	$(BIN)/python ci/check-floors.py

typecheck: venv
	$(BIN)/mypy

# The whole pytest suite (unit, end-to-end, browser, scheduler and distributed tests).
pytest: venv browser-deps distributed-deps azurite
	$(BIN)/pytest

test: lint typecheck pytest docs

# The suite on another Airflow, in a venv built once from its pinned set (ci/requirements):
#   make test-airflow AIRFLOW=3.2          make test-airflow AIRFLOW=3.3 PY=3.13
# PY defaults to the leg's only Python (3.11 where it has several); AIRFLOW=2.11-lowest is
# the floors leg (every direct requirement at its floor, Python 3.10).
AIRFLOW ?= 3.3
PY      ?=
test-airflow: $(UV) browser-deps azurite
	ci/test-airflow.sh $(AIRFLOW) $(PY)

demo: venv
	$(BIN)/python dev/demo.py

# The example DAG backfilled on a distributed Airflow on this machine: PostgreSQL, Redis,
# CeleryExecutor with two workers (tests/distributed.py).
demo-distributed: venv distributed-deps
	$(BIN)/python dev/demo_distributed.py

bench: venv
	$(BIN)/python dev/bench.py

# Records/s of one day split into parts on 1 and 2 Celery workers (docs/scaling.rst).
bench-scaling: venv distributed-deps
	$(BIN)/python dev/bench_scaling.py

docs: venv
	$(BIN)/sphinx-build -W --keep-going -b html -q docs docs/_build/html

# Debian's Chromium for the connection-form browser test. Installed here when this user can
# (root with apt-get, as on CI); otherwise one line says the command to run.
browser-deps:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Installing Debian's chromium for the browser test (apt-get)..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends chromium >/dev/null && /usr/bin/chromium --version; \
	else echo "The browser test needs Debian's Chromium: run 'sudo apt-get install chromium', then make test again." >&2; exit 1; fi

# Debian's PostgreSQL (metadata DB) and Redis (Celery broker) for the distributed test and
# demo, started by the harness itself. Installed here when this user can (root with apt-get,
# as on CI); otherwise one line says the command to run.
distributed-deps:
	@if command -v redis-server >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Installing Debian's postgresql and redis-server for the distributed test (apt-get)..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends postgresql redis-server >/dev/null \
	    && ls /usr/lib/postgresql/*/bin/initdb && redis-server --version; \
	else echo "The distributed test needs Debian's PostgreSQL and Redis: run 'sudo apt-get install postgresql redis-server', then make test again." >&2; exit 1; fi

# Azurite, the Azure Blob Storage emulator the tests start, from npm at the version locked in
# ci/azurite/package-lock.json (Node and npm come with the machine).
AZURITE := ci/azurite/node_modules/.bin/azurite-blob
$(AZURITE): ci/azurite/package.json ci/azurite/package-lock.json
	npm ci --prefix ci/azurite --no-audit --no-fund --silent
	touch $@

azurite: $(AZURITE)

clean:
	rm -rf $(VENV) $(TOOLS) .venvs docs/_build ci/azurite/node_modules
