#!/usr/bin/env bash
# The tuned comparison end to end (docs/tuning.md); also `scripts/reproduce.sh tuned`. Three steps, each reusing what
# is already done, so an interrupted call resumes:
#   1. Table 1's six untuned runs on seeds $SEEDS, by default the tuned runs' seeds, so that tuned and untuned are
#      compared seed for seed;
#   2. one Optuna study per configuration (cnnlab-tune experiment=report), $TRIALS trials each (default 8, the same
#      for every optimizer), then each best setting trained and tested on seeds $TUNED_SEEDS (default 0,1,2,3,4);
#   3. the report, with its Tuned comparison section.
# Arguments are training overrides for every run and study; to shrink it: TRIALS=4 scripts/tune.sh data.subset=5000.
# The jobs go through launcher=joblib (one one-thread job per core, on a CPU or sharing a GPU); LAUNCHER=basic|joblib|
# submitit_local|submitit_slurm overrides that choice. CNNLAB_PYTHON=<python with cnnlab installed> skips the set-up.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

report_args=()
train_overrides=""
for arg in "$@"; do
  case $arg in
    -*) ;;
    data=* | paths.*) report_args+=("$arg") ;;
    *) train_overrides+="'$arg'," ;;
  esac
done
if [ -z "${CNNLAB_PYTHON:-}" ]; then
  for arg in "${report_args[@]}"; do
    [ "${arg#data=}" != "$arg" ] || continue
    CNNLAB_DATASETS="${CNNLAB_DATASETS:-mnist} ${arg#data=}"
    export CNNLAB_DATASETS
  done
  bash scripts/setup.sh
  CNNLAB_PYTHON=.venv/bin/python
fi
py=$CNNLAB_PYTHON

TUNED_SEEDS=${TUNED_SEEDS:-0,1,2,3,4}
SEEDS=${SEEDS:-$TUNED_SEEDS}
TRIALS=${TRIALS:-8}
source scripts/launcher.sh "$py"
tune_settings=("tune.trials=$TRIALS" "tune.seeds=[$TUNED_SEEDS]")

start=$(date +%s)
echo "tuned: 1/3 Table 1's untuned runs (seeds $SEEDS) with launcher $LAUNCHER"
"$py" -m cnnlab.cli.train experiment=report "seed=$SEEDS" trainer.progress=false "${launcher[@]}" "$@"
echo "tuned: 2/3 one study per configuration ($TRIALS trials), then each best setting on seeds $TUNED_SEEDS"
"$py" -m cnnlab.cli.tune experiment=report "${tune_settings[@]}" trainer.progress=false "${launcher[@]}" "$@"
echo "tuned: 3/3 the report"
"$py" -m cnnlab.cli.report "seeds=[$SEEDS]" "train_overrides=[${train_overrides%,}]" \
  "tuning.tune_overrides=['${tune_settings[0]}','${tune_settings[1]}']" "${report_args[@]}"
echo "tuned: done in $(( ($(date +%s) - start) / 60 )) min (set-up not counted)"
