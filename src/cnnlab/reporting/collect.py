"""Find every run under `paths.runs_dir` (whatever launched it) and group the seeds of each configuration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.runs.layout import CHECKPOINT, METRICS
from cnnlab.runs.status import read_metrics

FINISHED_KEYS = ("test", "final_val_accuracy", "train_time_s", "history", "config")


@dataclass(frozen=True)
class Run:
    """One seed of one configuration, as its metrics.json describes it."""

    run_dir: Path
    metrics: dict[str, Any]

    @property
    def status(self) -> str:
        return self.metrics.get("status", "failed")

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
        return self.status == "finished"

    def reaches(self, target: float) -> tuple[int, float] | None:
        """(first epoch, seconds of training until then) at which validation accuracy reached `target`, or None."""
        seconds = 0.0
        for h in self.metrics.get("history", []):
            seconds += h["epoch_time_s"]
            if h["val_accuracy"] >= target:
                return h["epoch"], seconds
        return None


def collect_runs(runs_dir: str | Path) -> dict[str, list[Run]]:
    """Runs grouped by configuration name (the run directory's parent, relative to `runs_dir`), seeds sorted."""
    runs_dir = Path(runs_dir)
    groups: dict[str, list[Run]] = {}
    for path in sorted(runs_dir.rglob(METRICS)) if runs_dir.is_dir() else []:
        metrics = read_metrics(path.parent)
        if metrics.get("status") == "finished":
            lacking = [k for k in FINISHED_KEYS if k not in metrics] + [CHECKPOINT] * (
                not (path.parent / CHECKPOINT).is_file()
            )
            if lacking:
                metrics = {**metrics, "status": "failed", "error": f"finished but lacks {', '.join(lacking)}"}
        run = Run(path.parent, metrics)
        groups.setdefault(path.parent.parent.relative_to(runs_dir).as_posix(), []).append(run)
    for runs in groups.values():
        runs.sort(key=lambda r: (r.seed is None, r.seed or 0))
    return groups
