#!/usr/bin/env bash
# Set up a fresh checkout: .venv, cnnlab installed (editable, with the dev extra), MNIST fetched and verified.
# CNNLAB_DATASETS="mnist fashion_mnist" also fetches Fashion-MNIST (installing Debian's dataset-fashion-mnist
# with apt-get when it can, else torchvision downloads it). Idempotent: a second call only re-checks (seconds).
# Sourced by reproduce.sh and test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
# torch wheels this project is tested with; override e.g. TORCH_SPEC="torch torchvision" for the newest
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
VENV_PY=.venv/bin/python

stamp=.venv/.cnnlab-setup
want="$(sha256sum pyproject.toml | cut -c1-16) $TORCH_SPEC"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing dependencies into .venv"
  "$VENV_PY" -m pip install -q --upgrade pip
  if ! "$VENV_PY" -c "import torch, torchvision" 2>/dev/null; then
    # shellcheck disable=SC2086
    "$VENV_PY" -m pip install -q $TORCH_SPEC
  fi
  "$VENV_PY" -m pip install -q -e ".[dev,mlflow]"
  echo "$want" > "$stamp"
fi

for dataset in ${CNNLAB_DATASETS:-mnist}; do
  if [ "$dataset" = fashion_mnist ] && [ ! -d data/FashionMNIST/raw ] && [ ! -d /usr/share/datasets/fashion-mnist ] \
     && command -v apt-get >/dev/null; then
    echo "setup: installing Debian's dataset-fashion-mnist"
    sudo_=""; [ "$(id -u)" -ne 0 ] && sudo_="sudo -n"
    $sudo_ apt-get install -y -q dataset-fashion-mnist >/dev/null \
      || { $sudo_ apt-get update -q >/dev/null && $sudo_ apt-get install -y -q dataset-fashion-mnist >/dev/null; } \
      || echo "setup: apt-get could not install dataset-fashion-mnist; trying torchvision's download instead"
  fi
  "$VENV_PY" -m cnnlab.cli.data data="$dataset"
done
