#!/usr/bin/env bash
# Refresh requirements.lock: every dependency of pyproject.toml (all extras) pinned with hashes, for Linux x86_64 and
# Python 3.11 (the tested set). Re-run after adding or changing a dependency in pyproject.toml: versions already locked
# are kept unless the change needs others. LOCK_UPGRADE=1 moves every package to its newest allowed version.
# Uses uv (installed into .venv when not on PATH); only the package index is needed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if command -v uv >/dev/null; then
  UV=uv
else
  [ -x .venv/bin/uv ] || .venv/bin/python -m pip install -q uv
  UV=.venv/bin/uv
fi
# shellcheck disable=SC2086
"$UV" pip compile pyproject.toml --all-extras --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
  --generate-hashes --quiet --custom-compile-command "bash scripts/lock.sh" ${LOCK_UPGRADE:+--upgrade} \
  -o requirements.lock
echo "lock: requirements.lock holds $(grep -c '==' requirements.lock) packages"
