# Sourced by reproduce.sh, tune.sh and comparison.sh: the launcher their sweeps use, as LAUNCHER and the override array
# `launcher`. By default launcher=joblib: one-thread jobs side by side. On a CPU (one job per core) that gives more total
# throughput than one multi-threaded run after another; on a GPU most of a run's time is start-up, data loading and its
# test pass rather than its (graphed) training steps, and processes side by side overlap those. There each process holds
# its own CUDA context and copy of the data on the device, so the jobs are capped at GPU_JOBS (default 10, the count
# measured on an H200: docs/performance.md#gpu); lower it on a GPU with little memory.
# LAUNCHER=basic (one at a time), joblib, submitit_local or submitit_slurm overrides that choice. $1: the Python with
# torch installed.
LAUNCHER=${LAUNCHER:-joblib}
launcher=()
if [ "$LAUNCHER" != basic ]; then
  launcher=("launcher=$LAUNCHER")
fi
if [ "$LAUNCHER" = joblib ] && "$1" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  launcher+=("hydra.launcher.n_jobs=${GPU_JOBS:-10}")
fi
