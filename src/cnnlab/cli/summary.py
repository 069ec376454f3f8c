"""`cnnlab-summary`: parameter and neuron counts and the torchinfo layer table of the configured model."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from cnnlab.config import CONF_DIR
from cnnlab.data import get_spec
from cnnlab.errors import run_cli
from cnnlab.models.summary import summarize


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="summary")
def main(cfg: DictConfig) -> None:
    print(run_cli("cnnlab-summary", lambda: summarize(cfg.model, get_spec(cfg.data.name).image_shape)))


if __name__ == "__main__":
    main()
