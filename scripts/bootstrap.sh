#!/usr/bin/env bash
# Create .venv and install the project with everything its tests and dashboard need.
# Idempotent: a second run only checks. torch comes with the `sgg` extra (which `dev` includes;
# the base package and the `dashboard` extra need none); it is pinned first because a bare
# `torch` requirement with no torch present would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
VPY=.venv/bin/python
"$VPY" -m pip install -q --upgrade pip >/dev/null
if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
    "$VPY" -m pip install -q "torch==2.13.0"
fi
"$VPY" -m pip install -q -e ".[dev]"
