#!/usr/bin/env bash
# Create (or reuse) a virtual environment for the Python package's tests:
# PyTorch, transformers, Lightning, accelerate, pytest and maturin, from PyPI.
#
#   scripts/setup-python-env.sh [VENV_DIR]     (default: .venv in the repository)
#
# Idempotent: a second run with the same requirements only checks them.
# Prints the environment's python path on the last line of stdout.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-$repo/.venv}"
reqs="$repo/python/tests/requirements.txt"
python="${PYTHON:-}"
if [ -z "$python" ]; then
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1; then python="$candidate"; break; fi
    done
fi
[ -n "$python" ] || { echo "setup-python-env: no python3 on PATH (set PYTHON)" >&2; exit 2; }

if [ ! -x "$venv/bin/python" ]; then
    echo "setup-python-env: creating $venv with $("$python" --version 2>&1)" >&2
    "$python" -m venv "$venv"
fi

# The requirements already installed into this venv (recorded after success).
stamp="$venv/.oomguard-requirements"
if [ -f "$stamp" ] && cmp -s "$stamp" "$reqs" \
    && "$venv/bin/python" -c "import torch, transformers, lightning, accelerate, pytest" 2>/dev/null \
    && [ -x "$venv/bin/maturin" ]; then
    echo "setup-python-env: $venv is up to date" >&2
else
    echo "setup-python-env: installing $(grep -v '^#' "$reqs" | tr '\n' ' ')" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --timeout 180 -r "$reqs"
    cp "$reqs" "$stamp"
fi
echo "$venv/bin/python"
