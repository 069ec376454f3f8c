"""`cnnlab-train`: train a configuration, or sweep many with `-m`. Thin wrapper around
`cnnlab.training.runner.train`."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from cnnlab.config import CONF_DIR
from cnnlab.errors import run_cli
from cnnlab.training.runner import train


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    result = run_cli("cnnlab-train", lambda: train(cfg))
    # the value a Hydra sweeper would optimise: best validation accuracy (never test accuracy)
    return result.metrics.get("best_val_accuracy")


if __name__ == "__main__":
    main()
