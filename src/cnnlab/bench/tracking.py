"""What `logger=mlflow` adds to a run: the whole `cnnlab-train` command timed without and with it, as a user runs it.

Only named in `only` does it run (`cnnlab-bench only=[tracking]`): each round is two whole runs of `tracking_epochs`
epochs (five by default), minutes on a CPU. The logged side writes to a new default store each time (under its own
output folder), so it also pays for creating the store's tables, which a later run into that store does not.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from cnnlab.bench.registry import BenchContext, register
from cnnlab.bench.timing import Comparison, interleaved
from cnnlab.bench.training import BenchError
from cnnlab.errors import ConfigError
from cnnlab.runs.record import TIMINGS
from cnnlab.runs.status import read_metrics

TARGET_OVERHEAD = 0.05  # the most logging to the default store may add to a 5-epoch run's wall time


def _command(ctx: BenchContext, out_dir: Path, *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "cnnlab.cli.train", f"trainer.epochs={ctx.tracking_epochs}", "trainer.progress=false"]
    cmd += [f"trainer.device={ctx.device.type}", f"seed={ctx.seed}", f"data={ctx.data_name}"]
    cmd += [f"data.root={ctx.data_root}", f"paths.output_dir={out_dir}", *extra]
    if ctx.memory_subset:
        cmd += [f"data.subset={ctx.memory_subset}", f"data.val_size={max(ctx.memory_subset // 5, 1)}"]
    return cmd


def _run(cmd: list[str], out_dir: Path) -> Path:
    """Run one command to the end; its run directory."""
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
        raise BenchError(f"the tracking comparison's run failed: {tail[0] if tail else done.returncode}")
    (run_dir,) = (p.parent for p in out_dir.glob("runs/**/metrics.json"))
    return run_dir


def _history(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in h.items() if k not in TIMINGS} for h in read_metrics(run_dir)["history"]]


@register("tracking", opt_in=True)
def tracking_overhead(ctx: BenchContext) -> list[Comparison]:
    """Wall time of `cnnlab-train` without a logger and with `logger=mlflow`, alternating; both train the same weights
    and the logged run's MLflow run holds every epoch."""
    if importlib.util.find_spec("mlflow") is None:
        raise ConfigError("only=[tracking] needs the mlflow package: pip install -e '.[mlflow]'")
    count = {"off": 0, "mlflow": 0}

    def side(name: str, *extra: str) -> Path:
        count[name] += 1
        out_dir = ctx.scratch / "tracking" / f"{name}-{count[name]}"
        return _run(_command(ctx, out_dir, *extra), out_dir)

    # every call is a new process: there is nothing to warm up
    timed = interleaved({"off": lambda: side("off"), "mlflow": lambda: side("mlflow", "logger=mlflow")}, ctx.repeats, 0)
    off, on = timed["off"].outputs[-1], timed["mlflow"].outputs[-1]
    return [
        Comparison(
            name=f"logger=mlflow, a {ctx.tracking_epochs}-epoch cnnlab-train (a new store)",
            unit="s per run",
            baseline=timed["off"].median,
            cnnlab=timed["mlflow"].median,
            same_result=_history(off) == _history(on) and _tracked_epochs(on) == len(_history(on)),
            higher_is_better=False,
            target=f"overhead <= {TARGET_OVERHEAD:.0%} (speed-up >= {1 / (1 + TARGET_OVERHEAD):.3f}x)",
            details={
                "off_s": [round(s, 2) for s in timed["off"].seconds],
                "mlflow_s": [round(s, 2) for s in timed["mlflow"].seconds],
                "overhead": round(timed["mlflow"].median / timed["off"].median - 1, 4),
                "training_images": ctx.memory_subset or "all",
            },
        )
    ]


def _tracked_epochs(run_dir: Path) -> int:
    """Epochs the run's MLflow run holds (read back from its store), 0 when it is not FINISHED."""
    from mlflow import MlflowClient

    recorded = json.loads((run_dir / "mlflow.json").read_text())
    client = MlflowClient(recorded["tracking_uri"])
    run = client.get_run(recorded["run_id"])
    return len(client.get_metric_history(run.info.run_id, "train_loss")) if run.info.status == "FINISHED" else 0
