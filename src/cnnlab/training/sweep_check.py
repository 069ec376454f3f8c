"""A Hydra callback that checks a sweep's shared settings once, before any job starts.

Without it, a bad value given to every job (e.g. `-m optimizer=sgd,adam trainer.epochs=0`) fails in each job, and
parallel launchers print the same error once per worker.
"""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from cnnlab.errors import run_cli
from cnnlab.training.runner import check_settings


class SweepSettingsCheck(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        run_cli("cnnlab-train", lambda: check_settings(config))
