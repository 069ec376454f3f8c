#!/usr/bin/env bash
# The optimizer comparison end to end (docs/comparison.md); also `scripts/reproduce.sh comparison`. Three steps, each
# reusing what is already done, so an interrupted call resumes:
#   1. experiment=comparison: the four optimizers on four workloads (MNIST and Fashion-MNIST, with and without batch
#      norm) on seeds $SEEDS (default 0,1,2,3,4), validated twice per epoch;
#   2. one Optuna study per workload and optimizer with the random sampler and no pruning, $TRIALS trials each
#      (default 8), each best setting then trained on the same seeds (TRIALS=0 skips the studies);
#   3. the report, with its Optimizer comparison section.
# Arguments are training overrides for every run and study; to shrink it: SEEDS=0,1 TRIALS=4 scripts/comparison.sh
# data.subset=5000. The jobs go through launcher=joblib (one one-thread job per core, on a CPU or sharing a GPU);
# LAUNCHER=basic|joblib|submitit_local|submitit_slurm overrides that choice.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

train_overrides=""
for arg in "$@"; do
  case $arg in
    -* | paths.*) ;;
    *) train_overrides+="'$arg'," ;;
  esac
done
report_args=()
for arg in "$@"; do
  case $arg in paths.*) report_args+=("$arg") ;; esac
done
CNNLAB_DATASETS="mnist fashion_mnist" bash scripts/setup.sh
py=.venv/bin/python

SEEDS=${SEEDS:-0,1,2,3,4}
TRIALS=${TRIALS:-8}
source scripts/launcher.sh "$py"
tune_settings=("tune.sampler=random" "tune.pruner.name=none" "tune.trials=$TRIALS" "tune.seeds=[$SEEDS]")

start=$(date +%s)
echo "comparison: 1/3 four workloads x four optimizers on seeds $SEEDS with launcher $LAUNCHER"
"$py" -m cnnlab.cli.train experiment=comparison "seed=$SEEDS" trainer.progress=false "${launcher[@]}" "$@"
if [ "$TRIALS" -gt 0 ]; then
  echo "comparison: 2/3 one study per workload and optimizer ($TRIALS trials), each best setting on seeds $SEEDS"
  "$py" -m cnnlab.cli.tune experiment=comparison "${tune_settings[@]}" trainer.progress=false "${launcher[@]}" "$@"
fi
echo "comparison: 3/3 the report"
"$py" -m cnnlab.cli.report "comparison.seeds=[$SEEDS]" "train_overrides=[${train_overrides%,}]" \
  "comparison.tune_overrides=['${tune_settings[0]}','${tune_settings[1]}']" "${report_args[@]}"
echo "comparison: done in $(( ($(date +%s) - start) / 60 )) min (set-up not counted)"
