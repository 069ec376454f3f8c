#!/usr/bin/env bash
# Set up a fresh checkout: .venv with the locked dependencies (requirements.lock), cnnlab installed editable, MNIST
# fetched and verified.
# CNNLAB_DATASETS="mnist fashion_mnist" also fetches Fashion-MNIST (installing Debian's dataset-fashion-mnist
# with apt-get when it can, else torchvision downloads it). Idempotent: a second call only re-checks (seconds).
# Sourced by reproduce.sh and test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
VENV_PY=.venv/bin/python

# requirements.lock is the tested set (every dependency and extra, with hashes) for Linux x86_64 and Python 3.11;
# elsewhere pyproject.toml's ranges are used. Refresh it with `bash scripts/lock.sh` after changing a dependency.
stamp=.venv/.cnnlab-setup
want="$(cat pyproject.toml requirements.lock | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing dependencies into .venv"
  if "$VENV_PY" -c 'import platform, sys; sys.exit(not (sys.version_info[:2] == (3, 11) and platform.system() == "Linux"
      and platform.machine() == "x86_64"))'; then
    "$VENV_PY" -m pip install -q --require-hashes -r requirements.lock
    "$VENV_PY" -m pip install -q --no-deps -e .
  else
    echo "setup: requirements.lock is for Linux x86_64 and Python 3.11; installing from pyproject.toml's ranges"
    "$VENV_PY" -m pip install -q -e ".[dev,mlflow]"
  fi
  echo "$want" > "$stamp"
fi
# PyPI's Linux torch wheels are CUDA builds (they run on the CPU too); CPU-only builds exist only on the PyTorch index
"$VENV_PY" -c 'import torch; build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only"
gpu = "a GPU" if torch.cuda.is_available() else "no GPU"
print(f"setup: torch {torch.__version__} ({build} build; {gpu} here)")'

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
