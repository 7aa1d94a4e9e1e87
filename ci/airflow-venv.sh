#!/usr/bin/env bash
# Build (once) the virtualenv of one Airflow leg from its committed, pinned requirements and
# print its path on stdout (everything else goes to stderr):
#
#   ci/airflow-venv.sh <airflow-version> [python-version]      e.g.  ci/airflow-venv.sh 3.0
#   VENV="$(ci/airflow-venv.sh 2.11)" && "$VENV/bin/python" -m pytest tests/
#
# The venv is $AIRFLOW_VENVS/airflow-<ver>-py<py> (AIRFLOW_VENVS defaults to .venvs/ in the
# repo). It installs exactly ci/requirements/airflow-<ver>-py<py>.txt with `uv pip sync`
# (nothing is resolved here: every package and version comes from that file), then this
# project with `--no-deps -e .`. A stamp in the venv holds the sha256 of the requirements
# file and the interpreter version: while they match the venv is reused as it is (a second
# call returns at once); if only pyproject.toml changed, only the project is reinstalled.
# REBUILD=1 forces a fresh venv.
#
# The interpreter: $PYTHON if set, else python<py> on PATH, else pyenv's newest <py>.x.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 <airflow-version: 2.11|2.11-lowest|3.0|3.1|3.2|3.3> [python-version]" >&2
  exit 2
fi
ver="$1"
py="${2:-}"
if [ -z "$py" ]; then  # the leg's only Python, or 3.11 where it has several
  legs=(ci/requirements/airflow-"$ver"-py*.txt)
  if [ -f "ci/requirements/airflow-$ver-py3.11.txt" ]; then
    py=3.11
  elif [ "${#legs[@]}" -eq 1 ] && [ -f "${legs[0]}" ]; then
    py="${legs[0]##*-py}"
    py="${py%.txt}"
  fi
fi
req="ci/requirements/airflow-$ver-py$py.txt"
if [ ! -f "$req" ]; then
  echo "No pinned requirements for Airflow $ver on Python $py ($req). Existing legs:" >&2
  ls ci/requirements/airflow-*-py*.txt | sed 's/^/  /' >&2
  exit 2
fi

UV="${UV:-$ROOT/.tools/bin/uv}"
export UV_PYTHON_DOWNLOADS=never
unset VIRTUAL_ENV  # never let uv fall back to an activated venv
if [ ! -x "$UV" ]; then
  make -s -C "$ROOT" .tools/bin/uv >&2
fi

venvs="${AIRFLOW_VENVS:-$ROOT/.venvs}"
venv="$venvs/airflow-$ver-py$py"
stamp="$venv/.conpeek-ci-stamp"

find_python() {
  if [ -n "${PYTHON:-}" ]; then
    echo "$PYTHON"
    return
  fi
  local candidate
  for candidate in "python$py" "/usr/bin/python$py" "/usr/local/bin/python$py"; do
    # (a pyenv shim answers only for pyenv's selected version; sys.executable is the real one)
    if command -v "$candidate" >/dev/null 2>&1 \
      && "$candidate" -c "import sys; print(sys.executable)" 2>/dev/null; then
      return
    fi
  done
  if command -v pyenv >/dev/null 2>&1; then
    # pyenv's shims only answer for the selected version; use the install directly.
    candidate="$(ls -d "$(pyenv root)/versions/$py".* 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -n "$candidate" ] && [ -x "$candidate/bin/python$py" ]; then
      echo "$candidate/bin/python$py"
      return
    fi
  fi
  echo "No Python $py found: install it, or set PYTHON=/path/to/python$py" >&2
  exit 1
}
python="$(find_python)"
python_version="$("$python" -c 'import sys; print(sys.version.split()[0])')"
case "$python_version" in
  "$py".*) ;;
  *) echo "$python is Python $python_version, not $py" >&2; exit 1 ;;
esac

want="requirements $(sha256sum "$req" | cut -d' ' -f1)
python $python_version"
want_project="pyproject $(sha256sum pyproject.toml | cut -d' ' -f1)"
project_stamp="$venv/.conpeek-ci-project-stamp"

mkdir -p "$venvs"
exec 9>"$venv.lock"
flock 9  # two builds of one venv at once would corrupt it

install_project() {
  "$UV" pip install --quiet --python "$venv/bin/python" --no-deps -e "$ROOT" >&2
  printf '%s\n' "$want_project" >"$project_stamp"
}

if [ "${REBUILD:-0}" != 1 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
  && "$venv/bin/python" -c "" 2>/dev/null; then
  if [ ! -f "$project_stamp" ] || [ "$(cat "$project_stamp")" != "$want_project" ]; then
    echo "pyproject.toml changed: reinstalling the project (--no-deps -e .) in $venv" >&2
    install_project
  fi
  echo "$venv is up to date with $req" >&2
  echo "$venv"
  exit 0
fi

start=$(date +%s)
echo "Building $venv from $req (Python $python_version at $python)..." >&2
rm -f "$stamp" "$project_stamp"
"$UV" venv --quiet --clear --python "$python" "$venv" >&2
# Exactly the pinned set: nothing resolved, anything else removed; --strict checks that
# every installed package's own requirements are met by the set.
"$UV" pip sync --quiet --strict --python "$venv/bin/python" "$req" >&2
install_project
printf '%s\n' "$want" >"$stamp"
echo "Built $venv in $(($(date +%s) - start)) s" >&2
echo "$venv"
