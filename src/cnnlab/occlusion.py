"""`cnnlab-occlusion`: thin wrapper around `cnnlab.analysis.occlusion` (run=<run dir> or checkpoint=<file>)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from cnnlab.config import CONF_DIR
from cnnlab.analysis.command import report, run_analysis
from cnnlab.errors import run_cli


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="occlusion")
def main(cfg: DictConfig) -> None:
    print(report(run_cli("cnnlab-occlusion", lambda: run_analysis("occlusion", cfg))))


if __name__ == "__main__":
    main()
