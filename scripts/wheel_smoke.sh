#!/usr/bin/env bash
# Build the wheel and the sdist, install the wheel into a fresh venv outside the checkout and run a smoke chain from
# an empty folder there: data, a 1-epoch run on a subset, a sweep, a study, the report and two analyses. Proves the
# package works with no file of the checkout present. Run by .ci/run; by hand: `bash scripts/wheel_smoke.sh`.
#   CNNLAB_DATA_DIR    the MNIST folder to use (default: the checkout's data/; cnnlab-data fetches it if missing)
#   SMOKE_SITE         a site-packages holding the dependencies (e.g. .venv's) to reuse instead of installing
#                      requirements.lock into the fresh venv (quicker; pip's cache makes the lock install quick too)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
PY=${PYTHON:-.venv/bin/python}
work=$(mktemp -d "${TMPDIR:-/tmp}/cnnlab-wheel-smoke.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$SECONDS

"$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$work/dist" .
# the sdist through setuptools' PEP 517 hook (the `build` front end is not a dependency)
"$PY" -c 'import sys; from setuptools import build_meta; build_meta.build_sdist(sys.argv[1])' "$work/dist" >/dev/null
ls "$work"/dist/cnnlab-*.whl "$work"/dist/cnnlab-*.tar.gz >/dev/null

"$PY" -m venv "$work/venv"
venv_py="$work/venv/bin/python"
if [ -n "${SMOKE_SITE:-}" ]; then
  "$venv_py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' | xargs -I{} sh -c "echo '$SMOKE_SITE' > {}/deps.pth"
else
  "$venv_py" -m pip install -q --require-hashes -r requirements.lock
fi
"$venv_py" -m pip install -q --no-deps "$work"/dist/cnnlab-*.whl
echo "wheel-smoke: built and installed in $((SECONDS - start)) s"
# cnnlab and its configs come from the wheel in the fresh venv, never from the checkout
"$venv_py" -c 'import cnnlab.config as c, sys; assert str(c.CONF_DIR).startswith(sys.prefix), c.CONF_DIR'

mkdir "$work/empty" && cd "$work/empty"
export CNNLAB_DATA_DIR=${CNNLAB_DATA_DIR:-$repo/data} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
bin="$work/venv/bin"
"$bin/cnnlab-train" --help >/dev/null
"$bin/cnnlab-data"
"$bin/cnnlab-train" debug=smoke data.subset=256 data.val_size=1000 trainer.progress=false
run=$(ls -d outputs/runs/mnist/adam/*/seed42)
"$bin/cnnlab-report" analyses_enabled=false seeds=[42] tables.optimizers=[adam] \
  "train_overrides=['debug=smoke','data.subset=256','data.val_size=1000']" target_accuracy=10
"$bin/cnnlab-filters" run="$PWD/$run"
"$bin/cnnlab-robustness" run="$PWD/$run" images=100 "epsilons=[0,0.1]" steps=2
tiny=(debug=smoke data.subset=256 data.val_size=1000 trainer.progress=false)
"$bin/cnnlab-train" -m seed=1,2 "${tiny[@]}"
"$bin/cnnlab-tune" tune.trials=2 "tune.seeds=[]" "${tiny[@]}"
test -f outputs/report/REPORT.md && test -d outputs/runs/mnist/adam/*/seed2 && test -f outputs/tune/optuna.db
echo "wheel-smoke: passed in $((SECONDS - start)) s, run from an empty folder (data from $CNNLAB_DATA_DIR)"
