#!/usr/bin/env bash
# Reproduce the report on a fresh or set-up checkout: set-up, the report's six training runs, then the report.
# SEEDS=0,1,2,3,4 scripts/reproduce.sh runs every seed (finished runs are reused, so it also resumes).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh

SEEDS=${SEEDS:-42}
.venv/bin/cnnlab-train experiment=report "seed=$SEEDS" trainer.progress=false "$@"
echo "runs are under outputs/runs/"
# the report expects the runs that these arguments trained (e.g. debug=smoke for a quick end-to-end check)
train_overrides=""
for arg in "$@"; do [[ $arg == -* ]] || train_overrides+="'$arg',"; done
.venv/bin/cnnlab-report "seeds=[$SEEDS]" "train_overrides=[${train_overrides%,}]"
echo "the report is outputs/report/REPORT.md (and outputs/report/report.html for a browser)"
