"""Read a run directory's state from its metrics.json: running, finished, failed or diverged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cnnlab.runs.layout import METRICS

STATUSES = ("running", "finished", "failed", "diverged")


def read_metrics(run_dir: str | Path) -> dict[str, Any]:
    """The run's metrics, or {} when there is none yet (a partly written file cannot exist: writes are atomic)."""
    path = Path(run_dir) / METRICS
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {"status": "failed", "error": f"{path} is unreadable"}
