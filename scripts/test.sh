#!/usr/bin/env bash
# Run the test suite on a fresh or set-up checkout: set-up (venv, install, MNIST), then pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh -k smoke -x
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
