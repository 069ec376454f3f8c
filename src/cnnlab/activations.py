"""`cnnlab-activations`: thin wrapper around `cnnlab.analysis.activations` (run=<run dir> or checkpoint=<file>)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from cnnlab.config import CONF_DIR
from cnnlab.analysis.command import report, run_analysis
from cnnlab.errors import run_cli


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="activations")
def main(cfg: DictConfig) -> None:
    print(report(run_cli("cnnlab-activations", lambda: run_analysis("activations", cfg))))


if __name__ == "__main__":
    main()
