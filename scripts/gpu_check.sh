#!/usr/bin/env bash
# The GPU check, in one call on a machine with a CUDA GPU and no network, from a checkout where
# `bash scripts/gpu_prepare.sh` filled .whl/ and .gpu-data/ (carry both folders to that machine):
#   bash scripts/gpu_check.sh        results under $OUT (else outputs/gpu-check/)
# It installs only the carried wheels whose distribution python3 lacks or has in another version (into /tmp/site,
# nothing else), unpacks MNIST into data/MNIST/raw/ unless verified files are already there, then runs
# scripts/gpu_check.py, which must be done GPU_CHECK_BUDGET_S seconds after this script started (default 520): the
# CUDA tests, 5-epoch runs, the report's sweep as parallel processes, cnnlab-bench on cuda, occlusion on the CPU against
# CUDA and a sixth of the sweep one run at a time, each step timed and cut off at its own limit. Writes gpu_check.json,
# gpu_check.md, bench.json, steps.log and gpu_check.log.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
started=$(date +%s)
budget=${GPU_CHECK_BUDGET_S:-520}
OUT=${OUT:-$PWD/outputs/gpu-check}
PY=${PYTHON:-python3}
SITE=${GPU_CHECK_SITE:-/tmp/site}
export PYTHONUNBUFFERED=1

install_wheels() {
    # the carried wheels whose distribution python3 lacks or has in another version (omegaconf needs antlr4 4.9.3)
    local missing
    missing=$(
        "$PY" - .whl <<'EOF'
import importlib.metadata as metadata
import pathlib
import sys

for wheel in sorted(pathlib.Path(sys.argv[1]).glob("*.whl")):
    name, version = wheel.name.split("-")[:2]
    try:
        if metadata.version(name) == version:
            continue
    except metadata.PackageNotFoundError:
        pass
    print(wheel)
EOF
    )
    if [ -n "$missing" ]; then
        echo "[gpu_check] installing into $SITE:" $missing
        # shellcheck disable=SC2086  # one wheel path per word
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" $missing
    fi
}

unpack_mnist() {
    # MNIST as cnnlab checks it: the SHA-256 of the four uncompressed files
    verify() { "$PY" -c 'from cnnlab.data import MNIST_SPEC, verify_files; verify_files(MNIST_SPEC, "data")'; }
    verify 2>/dev/null && return 0
    # a checkout's data/ may be a link that travelled without what it points to
    if [ -L data ] && [ ! -e data ]; then rm data; fi
    mkdir -p data/MNIST/raw
    for gz in .gpu-data/MNIST/raw/*.gz; do
        [ -e "$gz" ] || { echo "[gpu_check] no .gpu-data/: run scripts/gpu_prepare.sh and carry it" >&2; return 1; }
        gzip -dc "$gz" >"data/MNIST/raw/$(basename "$gz" .gz)" || return 1
    done
    verify && echo "[gpu_check] MNIST unpacked into data/MNIST/raw and verified"
}

main() {
    echo "[gpu_check] $(date -u +%FT%TZ) $("$PY" -VV | head -n 1)"
    command -v nvidia-smi >/dev/null && nvidia-smi -L
    install_wheels || return 1
    export PYTHONPATH="$SITE:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
    "$PY" -c 'import hydra, omegaconf, torchinfo, hydra_plugins.hydra_joblib_launcher' || {
        echo "[gpu_check] packages missing: run scripts/gpu_prepare.sh where pip works and carry .whl" >&2
        return 1
    }
    unpack_mnist || return 1
    "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "[gpu_check] torch sees no CUDA GPU")' ||
        return 1
    local deadline=$((started + budget))
    timeout --kill-after=10 $((deadline - $(date +%s) + 5)) "$PY" scripts/gpu_check.py "$OUT" --deadline "$deadline"
    local status=$?
    echo "[gpu_check] done in $(($(date +%s) - started)) s (exit $status); in $OUT:" $(ls "$OUT")
    return $status
}

mkdir -p "$OUT"
main 2>&1 | tee -a "$OUT/gpu_check.log"
exit "${PIPESTATUS[0]}"
