"""Hydra callbacks that check what Hydra itself would otherwise fail on, or check once per job.

`WritableOutput`: Hydra creates its log folder (`hydra.run.dir`, or `hydra.sweep.dir` with -m) before any cnnlab code
runs; on a read-only path that fails deep inside Hydra. It creates the folder's parent first and, if it cannot, exits
with status 2 and `cnnlab-<task>: error: ...` naming the setting to change.

`SweepSettingsCheck`: a bad value given to every job of a sweep (e.g. `-m optimizer=sgd,adam trainer.epochs=0`) would
fail in each job, and parallel launchers would print the same error once per worker (or, on a cluster, once per
submitted job); it is checked once, before any job starts.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from cnnlab.errors import fail, run_cli
from cnnlab.training.runner import check_train_settings


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


class SweepSettingsCheck(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        with hydra_config(config) as resolvable:
            run_cli("cnnlab-train", lambda: check_train_settings(resolvable))


@contextmanager
def hydra_config(config: DictConfig) -> Iterator[DictConfig]:
    """A copy of the sweep's config whose `${hydra:...}` interpolations resolve, as they will in each job.

    Hydra sets its global HydraConfig only when a job starts, so before the sweep a setting such as the submitit
    launchers' `trainer.num_threads: ${hydra:launcher.cpus_per_task}` cannot be read. This sets it to the copy for the
    duration and then puts back what was there, leaving the launcher to set each job's own.
    """
    resolvable = copy.deepcopy(config)
    instance = HydraConfig.instance()
    previous = instance.cfg
    instance.set_config(resolvable)
    try:
        yield resolvable
    finally:
        instance.cfg = previous
