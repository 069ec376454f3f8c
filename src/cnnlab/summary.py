"""`cnnlab-summary`: parameter and neuron counts and the torchinfo layer table, with and without batch norm."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import hydra
from omegaconf import DictConfig

from cnnlab.config import CONF_DIR
from cnnlab.data import get_spec
from cnnlab.errors import run_cli
from cnnlab.models import build_model, count_neurons, count_parameters, layer_table


def summarize(model_cfg: Mapping[str, Any], image_shape: tuple[int, int, int]) -> str:
    model = build_model(model_cfg)
    params, neurons = count_parameters(model), count_neurons(model, image_shape)
    title = f"simple_cnn, batch_norm={model_cfg['batch_norm']}"
    return "\n".join(
        [
            title,
            f"parameters: {params['total']:,} (conv {params['conv']:,}, fc {params['fc']:,})",
            f"neurons:    {neurons['total']:,} (conv {neurons['conv']:,}, fc {neurons['fc']:,})",
            layer_table(model, image_shape),
        ]
    )


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="summary")
def main(cfg: DictConfig) -> None:
    print(run_cli("cnnlab-summary", lambda: summarize(cfg.model, get_spec(cfg.data.name).image_shape)))


if __name__ == "__main__":
    main()
