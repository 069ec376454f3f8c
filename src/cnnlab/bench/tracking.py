"""What `logger=mlflow` adds to a run: the whole `cnnlab-train` command timed without and with it, as a user runs it.

Only named in `only` does it run (`cnnlab-bench only=[tracking]`): each round is three whole runs of `tracking_epochs`
epochs (five by default), minutes on a CPU. All are `cnnlab-train` at its defaults (optimizer, model, batch size,
torch threads) on the bench's data, device and seed: one without a logger, one logging to a new default store (so it
also creates the store's tables) and one logging to a store whose tables exist (made before the rounds), as every
later run of an output folder does. Whole runs on a shared machine differ by several percent from one to the next,
so each logged run is also compared with the unlogged run of its own round (the median of those paired ratios is in
`details`).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from cnnlab.bench.registry import BenchContext, register
from cnnlab.bench.timing import Comparison
from cnnlab.bench.training import BenchError, subset_overrides, untimed_history
from cnnlab.runs.status import read_metrics
from cnnlab.tracking.mlflow import EPOCH_METRICS, RUN_ID_FILE, quiet_mlflow, require_mlflow

TARGET_OVERHEAD = 0.05  # the most logging to the default store may add to a 5-epoch run's wall time


def _command(ctx: BenchContext, out_dir: Path, *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "cnnlab.cli.train", f"trainer.epochs={ctx.tracking_epochs}", "trainer.progress=false"]
    cmd += [f"trainer.device={ctx.device.type}", f"seed={ctx.seed}", f"data={ctx.data_name}"]
    return [*cmd, f"data.root={ctx.data_root}", f"paths.output_dir={out_dir}", *subset_overrides(ctx), *extra]


def _run(cmd: list[str], out_dir: Path) -> Path:
    """Run one command to the end; its run directory."""
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
        raise BenchError(f"the tracking comparison's run failed: {tail[0] if tail else done.returncode}")
    (run_dir,) = (p.parent for p in out_dir.glob("runs/**/metrics.json"))
    return run_dir


LOGGED = ("a new store", "an existing store")


@register("tracking", opt_in=True)
def tracking_overhead(ctx: BenchContext) -> list[Comparison]:
    """Wall time of `cnnlab-train` without a logger and with `logger=mlflow`, `ctx.repeats` rounds of one run per side,
    the order of the sides rotating from round to round (every run is a new process: nothing to warm up). Same
    result: in every round all sides trained the same history and each logged run's MLflow run ended FINISHED with
    every metric at every epoch exactly once."""
    require_mlflow("only=[tracking]")
    from mlflow import MlflowClient

    root = ctx.scratch / "tracking"
    (root / "store").mkdir(parents=True)
    uri = f"sqlite:///{root / 'store' / 'mlflow.db'}"
    with quiet_mlflow():
        MlflowClient(uri).search_experiments()  # opening the store creates its tables, untimed
    # each side's extra overrides; the logged sides' names say which store, as the comparisons' names do
    sides = {
        "off": (),
        LOGGED[0]: ("logger=mlflow",),
        LOGGED[1]: ("logger=mlflow", f"logger.mlflow.tracking_uri={uri}"),
    }
    seconds: dict[str, list[float]] = {side: [] for side in sides}
    same: dict[str, list[bool]] = {side: [] for side in LOGGED}
    for round_ in range(ctx.repeats):
        first = round_ % len(sides)
        run_dirs = {}
        for side in [*sides][first:] + [*sides][:first]:
            out_dir = root / f"{side.replace(' ', '-')}-{round_}"
            start = time.perf_counter()
            run_dirs[side] = _run(_command(ctx, out_dir, *sides[side]), out_dir)
            seconds[side].append(time.perf_counter() - start)
        history = untimed_history(read_metrics(run_dirs["off"]))
        for side in LOGGED:
            trained = untimed_history(read_metrics(run_dirs[side]))
            same[side].append(trained == history and _tracked(run_dirs[side], len(history)))
    return [_comparison(ctx, side, seconds["off"], seconds[side], all(same[side])) for side in LOGGED]


def _comparison(ctx: BenchContext, side: str, off_s: list[float], on_s: list[float], same: bool) -> Comparison:
    off, on = statistics.median(off_s), statistics.median(on_s)
    paired = statistics.median(b / a - 1 for a, b in zip(off_s, on_s))
    return Comparison(
        name=f"logger=mlflow, a {ctx.tracking_epochs}-epoch cnnlab-train ({side})",
        unit="s per run",
        baseline=off,
        cnnlab=on,
        same_result=same,
        higher_is_better=False,
        target=f"overhead <= {TARGET_OVERHEAD:.0%} (speed-up >= {1 / (1 + TARGET_OVERHEAD):.3f}x)",
        details={
            "off_s": [round(s, 2) for s in off_s],
            "mlflow_s": [round(s, 2) for s in on_s],
            "overhead": round(on / off - 1, 4),
            "paired_overhead": round(paired, 4),  # the median of each round's logged/unlogged ratio, minus 1
            "training_images": ctx.memory_subset or "all",
        },
    )


def _tracked(run_dir: Path, epochs: int) -> bool:
    """Whether the run's MLflow run (read back from its store) is FINISHED with each epoch metric at steps 1..epochs."""
    from mlflow import MlflowClient

    recorded = json.loads((run_dir / RUN_ID_FILE).read_text())
    client = MlflowClient(recorded["tracking_uri"])
    if client.get_run(recorded["run_id"]).info.status != "FINISHED":
        return False
    steps = [sorted(m.step for m in client.get_metric_history(recorded["run_id"], key)) for key in EPOCH_METRICS]
    return all(s == list(range(1, epochs + 1)) for s in steps)
