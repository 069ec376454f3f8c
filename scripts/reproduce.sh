#!/usr/bin/env bash
# Reproduce the report on a fresh or set-up checkout: set-up, the report's six training runs, then the report.
# SEEDS=0,1,2,3,4 scripts/reproduce.sh runs every seed (finished runs are reused, so it also resumes).
# The runs go through launcher=joblib: one one-thread job per core side by side, which gives more total throughput
# than one run after another, on a CPU and on a GPU that the jobs share (at most GPU_JOBS, default 10, there;
# docs/performance.md#gpu).
# LAUNCHER=basic (one at a time), joblib, submitit_local or submitit_slurm overrides that choice.
# Arguments go to cnnlab-train; the report expects the runs they train: scripts/reproduce.sh data=fashion_mnist trains
# the six runs on Fashion-MNIST (set-up fetches it too) and writes its report to outputs/report-fashion_mnist/.
# scripts/reproduce.sh tuned [overrides]: the tuned comparison instead (scripts/tune.sh, docs/tuning.md).
# scripts/reproduce.sh comparison [overrides]: the optimizer comparison instead (scripts/comparison.sh,
# docs/comparison.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ "${1:-}" = tuned ]; then
  shift
  exec bash scripts/tune.sh "$@"
fi
if [ "${1:-}" = comparison ]; then
  shift
  exec bash scripts/comparison.sh "$@"
fi

# data=<name> selects the report's dataset; every other setting is one of the training overrides the report expects
report_args=()
train_overrides=""
for arg in "$@"; do
  case $arg in
    -*) ;;
    data=*) report_args+=("$arg") ;;
    *) train_overrides+="'$arg'," ;;
  esac
done
for arg in "${report_args[@]}"; do
  CNNLAB_DATASETS="${CNNLAB_DATASETS:-mnist} ${arg#data=}"
  export CNNLAB_DATASETS
done
bash scripts/setup.sh

SEEDS=${SEEDS:-42}
source scripts/launcher.sh .venv/bin/python
echo "reproduce: training the report's six runs (seeds $SEEDS) with launcher $LAUNCHER"
.venv/bin/cnnlab-train experiment=report "seed=$SEEDS" trainer.progress=false "${launcher[@]}" "$@"
echo "runs are under outputs/runs/"
# the report expects the runs that these arguments trained (e.g. debug=smoke for a quick end-to-end check) and prints
# where REPORT.md and report.html are
.venv/bin/cnnlab-report "seeds=[$SEEDS]" "train_overrides=[${train_overrides%,}]" "${report_args[@]}"
