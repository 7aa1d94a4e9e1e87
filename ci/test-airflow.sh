#!/usr/bin/env bash
# Run the project's pytest suite on one Airflow leg, in its pinned venv (built once by
# ci/airflow-venv.sh):
#
#   ci/test-airflow.sh <airflow-version> [python-version] [-- pytest arguments...]
#   ci/test-airflow.sh 2.11
#   ci/test-airflow.sh 3.3 3.13 -- -x -k sensor
#
# Without pytest arguments the whole tests/ directory runs, less the distributed test
# (marker `distributed`), which needs the Celery provider of the locked leg (`make test`).
# The venv's bin/ goes first on PATH: Airflow 2's executors start `airflow tasks run ...`
# by name. Without Debian's
# Chromium (/usr/bin/chromium) the browser test is left out, and a line says so.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

if [ $# -lt 1 ]; then
  echo "usage: $0 <airflow-version> [python-version] [-- pytest arguments...]" >&2
  exit 2
fi
ver="$1"
shift
py=""  # ci/airflow-venv.sh picks the leg's Python
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
  py="$1"
  shift
fi
if [ $# -gt 0 ] && [ "$1" = "--" ]; then
  shift
fi

venv="$(ci/airflow-venv.sh "$ver" $py)"
py="$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
export PATH="$venv/bin:$PATH"
unset VIRTUAL_ENV

args=("$@")
if [ "${#args[@]}" -eq 0 ]; then
  # The distributed test (PostgreSQL, Redis, Celery workers) runs on the locked leg only
  # (`make test`): the legs' pinned sets have no Celery provider.
  args=(tests/ -m "not distributed")
fi
if [ ! -x /usr/bin/chromium ]; then
  echo "NOTE: /usr/bin/chromium is missing: tests/test_browser.py is left out" \
    "(apt-get install chromium to run it)." >&2
  args+=(--ignore=tests/test_browser.py)
fi

echo "Airflow $ver on Python $py: $venv/bin/python -m pytest ${args[*]}" >&2
start=$(date +%s)
status=0
"$venv/bin/python" -m pytest -p no:cacheprovider "${args[@]}" || status=$?
echo "Airflow $ver on Python $py: pytest exit $status after $(($(date +%s) - start)) s" >&2
exit "$status"
