#!/usr/bin/env bash
# Reproduce the report on a fresh or set-up checkout: set-up, the report's six training runs, then the report.
# SEEDS=0,1,2,3,4 scripts/reproduce.sh runs every seed (finished runs are reused, so it also resumes).
# Without a GPU the runs go through launcher=joblib: one one-thread job per core side by side, which gives more total
# throughput than one multi-threaded run after another. With a GPU they run one at a time on it.
# LAUNCHER=basic (one at a time), joblib, submitit_local or submitit_slurm overrides that choice.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh

SEEDS=${SEEDS:-42}
if [ -z "${LAUNCHER:-}" ]; then
  if .venv/bin/python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    LAUNCHER=basic
  else
    LAUNCHER=joblib
  fi
fi
launcher=()
if [ "$LAUNCHER" != basic ]; then
  launcher=("launcher=$LAUNCHER")
fi
echo "reproduce: training the report's six runs (seeds $SEEDS) with launcher $LAUNCHER"
.venv/bin/cnnlab-train experiment=report "seed=$SEEDS" trainer.progress=false "${launcher[@]}" "$@"
echo "runs are under outputs/runs/"
# the report expects the runs that these arguments trained (e.g. debug=smoke for a quick end-to-end check)
train_overrides=""
for arg in "$@"; do [[ $arg == -* ]] || train_overrides+="'$arg',"; done
.venv/bin/cnnlab-report "seeds=[$SEEDS]" "train_overrides=[${train_overrides%,}]"
echo "the report is outputs/report/REPORT.md (and outputs/report/report.html for a browser)"
