#!/usr/bin/env bash
# Prepare the GPU check here, where pip and the MNIST files are: scripts/gpu_check.sh runs on a GPU machine that can
# download nothing, so what it needs goes into two folders that git ignores (added to .git/info/exclude) and that the
# device run carries:
#   .whl/       Python 3.12 wheels of the packages cnnlab needs that the GPU machine's python3 lacks, at the versions
#               installed here (pure-Python ones, or manylinux x86-64 builds for CPython 3.12)
#   .gpu-data/  MNIST's four idx files, gzipped (about 11 MB instead of 55), checked against their SHA-256 first
# Usage: bash scripts/gpu_prepare.sh    (PYTHON=... names the interpreter whose pip downloads and whose installed
#                                        versions are pinned; default .venv/bin/python, else python3)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3

# cnnlab's dependencies (pyproject.toml) and theirs that the GPU machine lacks; it has torch, torchvision, numpy,
# scipy, scikit-learn, matplotlib, seaborn, tqdm, markdown, tensorboard, joblib, cloudpickle, pyyaml, packaging,
# typing-extensions, jinja2, pytest and pytest-xdist (captum needs only what is there: numpy, torch, matplotlib, tqdm)
packages=(hydra-core omegaconf antlr4-python3-runtime torchinfo hydra-joblib-launcher hydra-submitit-launcher submitit
    captum)
# optuna and what it needs there, once the code uses it
if grep -rqw optuna src tests pyproject.toml; then
    packages+=(optuna alembic colorlog Mako SQLAlchemy greenlet)
fi

installed_version() {
    "$PY" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$1" 2>/dev/null || true
}

wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
for name in "${packages[@]}"; do
    version=$(installed_version "$name")
    spec=$name${version:+==$version}
    if ! "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$wheels" "$spec" 2>"$wheels/pip.log"; then
        # no wheel published (antlr4-python3-runtime 4.9.3 is a source archive only): build one, pure Python only
        echo "no wheel of $spec to download; building one from its source archive"
        "$PY" -m pip wheel -q --no-deps -w "$wheels" "$spec" || { cat "$wheels/pip.log" >&2; exit 1; }
    fi
done
for wheel in "$wheels"/*.whl; do
    case $(basename "$wheel") in
        *-none-any.whl | *-cp312-*manylinux*x86_64*.whl) ;;
        *) echo "$(basename "$wheel") would not install on the GPU machine's CPython 3.12 (x86-64)" >&2; exit 1 ;;
    esac
done
rm -rf .whl
mkdir .whl
mv "$wheels"/*.whl .whl/

# the MNIST files as cnnlab checks them, gzipped under their own names
names=$(PYTHONPATH=$PWD/src "$PY" -c '
from cnnlab.data import MNIST_SPEC, verify_files
verify_files(MNIST_SPEC, "data")
print(" ".join(MNIST_SPEC.sha256))')
rm -rf .gpu-data
mkdir -p .gpu-data/MNIST/raw
for name in $names; do
    gzip -c -n -6 "data/MNIST/raw/$name" >".gpu-data/MNIST/raw/$name.gz"
done

exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
for pattern in /.whl/ /.gpu-data/; do
    grep -qxF "$pattern" "$exclude" 2>/dev/null || echo "$pattern" >>"$exclude"
done

mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
bytes() { du -cb "$@" | tail -n 1 | cut -f 1; }
tree=$( (git ls-files -z; git ls-files -z --others --exclude-standard) | du -cb --files0-from=- 2>/dev/null | tail -n 1 |
    cut -f 1)
carried=$(bytes .whl .gpu-data)
ls -l .whl
echo ".whl: $(mib "$(bytes .whl)"), .gpu-data: $(mib "$(bytes .gpu-data)")"
echo "travels to the GPU machine: $(mib "$tree") of tracked and untracked files + $(mib "$carried") carried" \
    "= $(mib $((tree + carried))) (the limit is 64 MiB)"
