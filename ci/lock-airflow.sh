#!/usr/bin/env bash
# Regenerate the pinned requirements of every Airflow leg from its input file:
#
#   ci/requirements/airflow-<ver>.in  ->  ci/requirements/airflow-<ver>-py<py>.txt
#
# Usage:
#   ci/lock-airflow.sh                 # every leg in LEGS below
#   ci/lock-airflow.sh 3.0 3.3         # only the legs of these Airflow versions
#   ci/lock-airflow.sh --check [ver..] # compile to a temp dir and fail if a file is stale
#
# Idempotent: every run resolves from scratch (--upgrade, so an existing .txt never steers
# the result) with the same uv, the same inputs and the same --exclude-newer cut-off, so it
# rewrites the same bytes. To take newer releases, move EXCLUDE_NEWER forward (env or
# below), run this, then rebuild and test the legs (ci/airflow-venv.sh, ci/smoke-airflow.py).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

# Airflow version and Python version of each leg ("<ver>-lowest": the floors leg, resolved
# with lowest-direct). Keep in step with .ci/run and ci/README.md.
LEGS=(
  "2.11 3.11"
  "2.11-lowest 3.10"
  "3.0 3.11"
  "3.1 3.11"
  "3.2 3.12"
  "3.3 3.10"
  "3.3 3.11"
  "3.3 3.13"
)
# Nothing uploaded to PyPI after this instant is considered (reproducible re-locks).
EXCLUDE_NEWER="${EXCLUDE_NEWER:-2026-11-28T00:00:00Z}"
PLATFORM="${LOCK_PLATFORM:-x86_64-unknown-linux-gnu}"
UV="${UV:-$ROOT/.tools/bin/uv}"
export UV_PYTHON_DOWNLOADS=never

if [ ! -x "$UV" ]; then
  make -s -C "$ROOT" .tools/bin/uv >&2
fi

check=0
if [ "${1:-}" = "--check" ]; then
  check=1
  shift
fi
wanted=("$@")

out_dir="ci/requirements"
if [ "$check" = 1 ]; then
  out_dir="$(mktemp -d)"
  trap 'rm -rf "$out_dir"' EXIT
fi

status=0
for leg in "${LEGS[@]}"; do
  read -r ver py <<<"$leg"
  if [ "${#wanted[@]}" -gt 0 ] && [[ ! " ${wanted[*]} " == *" $ver "* ]]; then
    continue
  fi
  in="ci/requirements/airflow-$ver.in"
  txt="airflow-$ver-py$py.txt"
  echo "locking $in for Python $py -> ci/requirements/$txt" >&2
  resolution=()
  if [[ "$ver" == *-lowest ]]; then
    resolution=(--resolution lowest-direct)  # every direct requirement at its floor
  fi
  # Run from ci/requirements so the "# via -r ..." comments name files relative to it
  # (the same bytes whichever directory the output goes to).
  (
    cd ci/requirements
    "$UV" pip compile "airflow-$ver.in" \
      --python-version "$py" \
      --python-platform "$PLATFORM" \
      --exclude-newer "$EXCLUDE_NEWER" \
      --upgrade \
      "${resolution[@]}" \
      --custom-compile-command "ci/lock-airflow.sh $ver" \
      --quiet \
      --output-file "$(cd "$ROOT" && realpath -m "$out_dir/$txt")"
  )
  if [ "$check" = 1 ] && ! cmp -s "$out_dir/$txt" "ci/requirements/$txt"; then
    echo "STALE: ci/requirements/$txt differs from what ci/lock-airflow.sh $ver produces" >&2
    diff -u "ci/requirements/$txt" "$out_dir/$txt" >&2 || true
    status=1
  fi
done
exit "$status"
