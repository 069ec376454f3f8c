# Sourced by reproduce.sh, tune.sh and comparison.sh: the launcher their sweeps use, as LAUNCHER and the override array
# `launcher`. By default launcher=joblib: one one-thread job per core side by side. On a CPU that gives more total
# throughput than one multi-threaded run after another; on a GPU this network's batch-64 steps are bound by launching
# kernels from Python, so processes sharing the GPU keep it busier than one alone (docs/performance.md#gpu).
# LAUNCHER=basic (one at a time), joblib, submitit_local or submitit_slurm overrides that choice.
LAUNCHER=${LAUNCHER:-joblib}
launcher=()
if [ "$LAUNCHER" != basic ]; then
  launcher=("launcher=$LAUNCHER")
fi
