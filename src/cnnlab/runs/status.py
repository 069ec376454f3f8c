"""A run's state as metrics.json records it, and how to read it back."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any

from cnnlab.runs.layout import METRICS


class RunStatus(str, Enum):
    """The `status` of a run's metrics.json. A str, so it compares equal to (and is written to JSON as) its value.
    Enum.__format__ uses an overridden __str__, so f-strings show the value too."""

    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    DIVERGED = "diverged"
    PRUNED = "pruned"  # stopped early by a tuner after an epoch; last.pt kept, so it can still be trained on
    TRAINED = "trained"  # every epoch trained, the test set not yet read (a tuning trial); training it again tests it

    def __str__(self) -> str:
        return self.value

    @property
    def is_final(self) -> bool:
        """A deterministic outcome: training the same configuration and seed again would repeat it."""
        return self in (RunStatus.FINISHED, RunStatus.DIVERGED)


# what the report counts beside the finished seeds of a configuration (its results.csv has a column for each)
UNFINISHED = (RunStatus.DIVERGED, RunStatus.FAILED, RunStatus.RUNNING)


def read_metrics(run_dir: str | Path) -> dict[str, Any]:
    """The run's metrics, or {} when there is none yet (a partly written file cannot exist: writes are atomic)."""
    path = Path(run_dir) / METRICS
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {"status": RunStatus.FAILED, "error": f"{path} is unreadable"}


def status_of(metrics: dict[str, Any]) -> RunStatus:
    """The recorded status; a missing or unknown one counts as failed (a run that never recorded one is not usable)."""
    try:
        return RunStatus(metrics.get("status"))
    except ValueError:
        return RunStatus.FAILED
