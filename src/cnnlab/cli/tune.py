"""`cnnlab-tune`: tune a training configuration with Optuna (one study per configuration; sweep configurations with
`-m` or `experiment=report`), then train the best setting on `tune.seeds`. Thin wrapper around
`cnnlab.tuning.runner.tune`."""

from __future__ import annotations

from omegaconf import DictConfig

from cnnlab.cli.entry import command
from cnnlab.errors import run_cli
from cnnlab.tuning.runner import tune
from cnnlab.tuning.settings import check_tune


@command("cnnlab-tune", "tune", check=check_tune)
def main(cfg: DictConfig) -> float | None:
    # the study's best final-epoch validation accuracy (never test accuracy)
    return run_cli("cnnlab-tune", lambda: tune(cfg)).best_value


if __name__ == "__main__":
    main()
