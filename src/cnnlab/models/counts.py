"""Parameter and neuron counts, and the torchinfo layer table, as the report and `cnnlab-summary` state them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torchinfo
from torch import nn

from cnnlab.models.simple_cnn import build_model


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Trainable parameters per top-level block (`conv_block`, `fc_block` -> conv, fc) and in total."""
    per_block = {
        name.removesuffix("_block"): sum(p.numel() for p in child.parameters())
        for name, child in model.named_children()
    }
    return {**per_block, "total": sum(p.numel() for p in model.parameters())}


def count_neurons(model: nn.Module, input_shape: tuple[int, ...] = (1, 28, 28)) -> dict[str, int]:
    """Output units of every conv and linear layer for one input: conv maps count C*H*W, linear layers their width."""
    sizes: dict[str, int] = {"conv": 0, "fc": 0}
    hooks = [
        module.register_forward_hook(lambda m, i, out, kind=kind: sizes.__setitem__(kind, sizes[kind] + out[0].numel()))
        for module in model.modules()
        for kind in ["conv" if isinstance(module, nn.Conv2d) else "fc" if isinstance(module, nn.Linear) else None]
        if kind
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            device = next(model.parameters()).device
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return {**sizes, "total": sizes["conv"] + sizes["fc"]}


def layer_table(model: nn.Module, input_shape: tuple[int, ...] = (1, 28, 28)) -> str:
    """torchinfo's table of output shapes and parameters per layer."""
    stats = torchinfo.summary(
        model,
        input_size=(1, *input_shape),
        col_names=("output_size", "num_params"),
        verbose=0,
        device=next(model.parameters()).device,
        mode="eval",
    )
    return str(stats)


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
