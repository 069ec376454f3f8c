"""`cnnlab-summary`: parameter and neuron counts and the torchinfo layer table of the configured model."""

from __future__ import annotations

from omegaconf import DictConfig

from cnnlab.cli.entry import command
from cnnlab.data import get_spec
from cnnlab.errors import run_cli
from cnnlab.models.counts import model_size_text


@command("cnnlab-summary", "summary")
def main(cfg: DictConfig) -> None:
    print(run_cli("cnnlab-summary", lambda: model_size_text(cfg.model, get_spec(cfg.data.name).image_shape)))


if __name__ == "__main__":
    main()
