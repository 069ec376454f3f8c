#!/usr/bin/env bash
# Check formatting and lint (ruff, configured in pyproject.toml) over src, tests and scripts, as CI does; exits
# non-zero if either check finds a problem. Needs the set-up .venv (scripts/setup.sh installs ruff with the dev
# extra); `.venv/bin/ruff format src tests scripts` fixes the formatting.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
status=0
.venv/bin/ruff format --check src tests scripts || status=1
.venv/bin/ruff check src tests scripts || status=1
exit "$status"
