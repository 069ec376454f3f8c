"""`cnnlab-train`: train a configuration, or sweep many with `-m`. Thin wrapper around
`cnnlab.training.runner.train`."""

from __future__ import annotations

from omegaconf import DictConfig

from cnnlab.cli.entry import command
from cnnlab.errors import run_cli
from cnnlab.training.runner import check_train_settings, train


@command("cnnlab-train", "train", check=check_train_settings)
def main(cfg: DictConfig) -> float | None:
    result = run_cli("cnnlab-train", lambda: train(cfg))
    # the value a Hydra sweeper would optimise: best validation accuracy (never test accuracy)
    return result.metrics.get("best_val_accuracy")


if __name__ == "__main__":
    main()
