"""`cnnlab-report`: the report from every run under paths.runs_dir. Thin wrapper around `cnnlab.reporting.build_report`."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from cnnlab.errors import run_cli
from cnnlab.reporting import build_report


@hydra.main(version_base="1.3", config_path="../../conf", config_name="report")
def main(cfg: DictConfig) -> None:
    result = run_cli("cnnlab-report", lambda: build_report(cfg))
    print("\n".join(result.lines()))


if __name__ == "__main__":
    main()
