# Sourced by reproduce.sh and tune.sh: the launcher their sweeps use, as LAUNCHER and the override array `launcher`.
# Without a GPU the jobs go through launcher=joblib (one one-thread job per core side by side, more total throughput
# than one multi-threaded run after another); with a GPU they run one at a time on it. LAUNCHER=basic, joblib,
# submitit_local or submitit_slurm overrides that choice. $1: the Python with torch installed.
if [ -z "${LAUNCHER:-}" ]; then
  if "$1" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    LAUNCHER=basic
  else
    LAUNCHER=joblib
  fi
fi
launcher=()
if [ "$LAUNCHER" != basic ]; then
  launcher=("launcher=$LAUNCHER")
fi
