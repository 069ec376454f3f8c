"""Find every run under `paths.runs_dir` (whatever launched it) and group the seeds of each configuration."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.runs.layout import CHECKPOINT, METRICS
from cnnlab.runs.record import pass_seconds
from cnnlab.runs.status import RunStatus, read_metrics, status_of

FINISHED_KEYS = ("test", "final_val_accuracy", "train_time_s", "history", "config")
# the numbers the tables are made of: a finished run must have each, finite
NUMBERS = {
    "test accuracy": ("test", "accuracy"),
    "test loss": ("test", "loss"),
    "final validation accuracy": ("final_val_accuracy",),
    "best validation accuracy": ("best_val_accuracy",),
    "training time": ("train_time_s",),
}


@dataclass(frozen=True)
class Run:
    """One seed of one configuration, as its metrics.json describes it."""

    run_dir: Path
    metrics: dict[str, Any]

    @property
    def status(self) -> RunStatus:
        return status_of(self.metrics)

    @property
    def seed(self) -> int | None:
        seed = self.metrics.get("seed")
        if seed is None and self.run_dir.name.startswith("seed"):
            seed = self.run_dir.name.removeprefix("seed")
        try:
            return int(seed)
        except (TypeError, ValueError):
            return None

    @property
    def finished(self) -> bool:
        return self.status == RunStatus.FINISHED

    def reaches(self, target: float) -> tuple[int, float] | None:
        """(first epoch, seconds of training until then) at which validation accuracy reached `target`, or None.
        Seconds are the training passes' (`train_s`; for runs recorded before it was kept, the epochs' with their
        validation), so validating more often never makes a run look slower."""
        seconds = 0.0
        for h in self.metrics.get("history", []):
            seconds += pass_seconds(h)
            if h["val_accuracy"] >= target:
                return h["epoch"], seconds
        return None


def read_run(run_dir: Path) -> Run:
    """The run as its metrics.json records it (empty when there is none); one recorded as finished but unusable (a
    key, number or checkpoint missing) counts as failed, as the report's tables count it."""
    metrics = read_metrics(run_dir)
    if status_of(metrics) == RunStatus.FINISHED and (problem := unusable(metrics, run_dir)):
        metrics = {**metrics, "status": RunStatus.FAILED, "error": f"finished but {problem}"}
    return Run(run_dir, metrics)


def collect_runs(runs_dir: str | Path) -> dict[str, list[Run]]:
    """Runs grouped by configuration name (the run directory's parent, relative to `runs_dir`), seeds sorted."""
    runs_dir = Path(runs_dir)
    groups: dict[str, list[Run]] = {}
    for path in sorted(runs_dir.rglob(METRICS)) if runs_dir.is_dir() else []:
        groups.setdefault(path.parent.parent.relative_to(runs_dir).as_posix(), []).append(read_run(path.parent))
    for runs in groups.values():
        runs.sort(key=lambda r: (r.seed is None, r.seed or 0))
    return groups


def unusable(metrics: dict[str, Any], run_dir: Path) -> str | None:
    """Why a run recorded as finished cannot be reported (a key or checkpoint missing, a number missing or not
    finite, as a hand-edited or foreign metrics.json may have), or None."""
    lacking = [k for k in FINISHED_KEYS if k not in metrics] + [CHECKPOINT] * (not (run_dir / CHECKPOINT).is_file())
    if lacking:
        return f"lacks {', '.join(lacking)}"
    for what, path in NUMBERS.items():
        value: Any = metrics
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return f"its {what} is {'missing' if value is None else value}"
    return None
