"""`cnnlab-replay`: replay the notebook's six runs and print published vs replayed. Thin wrapper around
`cnnlab.replay.runner.replay`."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from cnnlab.config import CONF_DIR
from cnnlab.errors import run_cli
from cnnlab.replay.results import format_comparison
from cnnlab.replay.runner import replay


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="replay")
def main(cfg: DictConfig) -> None:
    result = run_cli("cnnlab-replay", lambda: replay(cfg))
    print(format_comparison(result.summary), flush=True)
    print(f"results: {result.path}", flush=True)


if __name__ == "__main__":
    main()
