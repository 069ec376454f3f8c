#!/usr/bin/env bash
# Run the test suite on a fresh or set-up checkout: set-up (venv, install, MNIST), then pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh -k smoke -x
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
# The suite is mostly process start-up and small training runs: one pytest worker per core (at most 4), each with one
# torch thread (its subprocesses inherit it), gets through it faster: 8 min 41 s on 2 cores against 13 min in one process.
workers=$(nproc); [ "$workers" -gt 4 ] && workers=4
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
exec .venv/bin/python -m pytest -n "$workers" --dist loadgroup "$@"
