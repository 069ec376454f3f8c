"""`SweepParent`: with `logger=mlflow`, a Hydra multirun is one MLflow parent run with each job's run beneath it.

The parent starts before the launcher starts any job, and its id goes into this process's environment
(`cnnlab.tracking.mlflow.PARENT_ENV`), which every job inherits: the basic launcher's jobs run in this process,
joblib's workers and sbatch's jobs are started from it. It ends after the last job: FAILED when any job's run failed.
"""

from __future__ import annotations

import os
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from cnnlab.errors import run_cli
from cnnlab.tracking.mlflow import end_parent, start_parent


class SweepParent(Callback):
    run_id: str | None = None
    previous: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        settings = OmegaConf.to_container(config.logger.mlflow, resolve=True)
        sweep_dir = str(config.hydra.sweep.dir)
        tags = {
            "cnnlab.kind": "sweep",
            "cnnlab.sweep_dir": sweep_dir,
            "cnnlab.overrides": " ".join(config.hydra.overrides.task)[:5000],
        }
        name = f"{config.hydra.job.name} sweep {os.path.basename(sweep_dir)}"
        self.run_id, self.previous = run_cli(
            f"cnnlab-{config.hydra.job.name}", lambda: start_parent(settings, name, tags)
        )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.run_id is not None:
            end_parent(OmegaConf.to_container(config.logger.mlflow, resolve=True), self.run_id, self.previous)
