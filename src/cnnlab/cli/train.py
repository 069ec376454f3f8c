"""`cnnlab-train`: train a configuration, or sweep many with `-m`. Thin wrapper around
`cnnlab.training.runner.train`."""

from __future__ import annotations

from omegaconf import DictConfig

from cnnlab.cli.entry import command
from cnnlab.errors import run_cli
from cnnlab.training.loggers import warm_up


def check(cfg: DictConfig) -> None:
    """`training.runner.check_train_settings`, imported (with torch, seconds) once `logger=mlflow`'s tracking process
    has started, so that MLflow's import in that process overlaps torch's in this one."""
    warm_up(cfg.get("logger"))
    from cnnlab.training.runner import check_train_settings

    check_train_settings(cfg)


@command("cnnlab-train", "train", check=check)
def main(cfg: DictConfig) -> float | None:
    from cnnlab.training.runner import train

    result = run_cli("cnnlab-train", lambda: train(cfg))
    # the value a Hydra sweeper would optimise: best validation accuracy (never test accuracy)
    return result.metrics.get("best_val_accuracy")


if __name__ == "__main__":
    main()
