"""A Hydra callback that checks what Hydra itself would otherwise fail on.

`WritableOutput`: Hydra creates its log folder (`hydra.run.dir`, or `hydra.sweep.dir` with -m) before any cnnlab code
runs; on a read-only path that fails deep inside Hydra. It creates the folder's parent first and, if it cannot, exits
with status 2 and `cnnlab-<task>: error: ...` naming the setting to change.

A sweep's settings need no callback: `cnnlab.cli.entry` checks every job's config before Hydra starts the sweep.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from cnnlab.errors import fail


class WritableOutput(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check_log_parent(config, config.hydra.run.dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check_log_parent(config, config.hydra.sweep.dir)


def _check_log_parent(config: DictConfig, log_dir: str) -> None:
    # the parent, because the folder's own name holds a timestamp that Hydra resolves separately
    parent = Path(log_dir).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        fail(
            f"cnnlab-{config.hydra.job.name}",
            f"cannot create the log folder {parent} ({err.strerror}); point paths.output_dir at a writable folder",
        )
