"""A model's size for people: parameter and neuron counts and the torchinfo layer table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cnnlab.models.counts import count_neurons, count_parameters, layer_table
from cnnlab.models.simple_cnn import build_model


def model_size_text(model_cfg: Mapping[str, Any], image_shape: tuple[int, int, int]) -> str:
    """What `cnnlab-summary` prints for one model config, also shown in the report."""
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
