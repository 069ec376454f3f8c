#!/usr/bin/env bash
# Run the test suite on a fresh or set-up checkout: set-up (venv, install, MNIST), then pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh -k smoke -x, or scripts/test.sh -m "not slow" for the fast loop
# (it leaves out the tests marked slow: those that train real runs or start Python in a subprocess).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# the suite trains on both datasets (the optimizer comparison's workloads): set-up fetches Fashion-MNIST too
export CNNLAB_DATASETS=${CNNLAB_DATASETS:-mnist fashion_mnist}
bash scripts/setup.sh
# The suite is mostly process start-up and small training runs, which gain little from more torch threads: one pytest
# worker per core (at most 4), each with one torch thread (its subprocesses inherit it), keeps every core busy and gets
# through the suite faster than one process using every core. The tests that share a fixture which trains runs stay
# on one worker, so it trains them once (tests/conftest.py groups them); every other test goes to the next free worker
# (--dist loadgroup).
workers=$(nproc); [ "$workers" -gt 4 ] && workers=4
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# the suite starts a few hundred Python processes that import cnnlab: with bytecode written (__pycache__, ignored by
# git) they load it instead of compiling every module again, as does pytest's assertion rewriting of the tests
unset PYTHONDONTWRITEBYTECODE
exec .venv/bin/python -m pytest -n "$workers" --dist loadgroup "$@"
