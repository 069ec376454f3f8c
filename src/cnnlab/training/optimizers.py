"""Build an optimizer from its config group with Hydra's instantiate (a partial that receives the parameters)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from hydra.utils import instantiate


def build_optimizer(optimizer_cfg: Mapping[str, Any], params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """`optimizer_cfg` is a group entry such as conf/optimizer/adam.yaml; its `name` labels runs and is not
    passed on."""
    factory_cfg = {key: value for key, value in dict(optimizer_cfg).items() if key != "name"}
    factory = instantiate(factory_cfg)
    return factory(params=params)
