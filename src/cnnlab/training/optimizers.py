"""Build an optimizer from its config group with Hydra's instantiate (a partial that receives the parameters)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from cnnlab.checks import finite_numbers, one_of, positive_float
from cnnlab.errors import ConfigError

# The optimizers cnnlab knows: an `optimizer.name` files its runs under runs/<data>/<name>/, so a name must say which
# optimizer really trained them (conf/optimizer/<name>.yaml).
OPTIMIZERS = {
    "sgd": "torch.optim.SGD",
    "momentum": "torch.optim.SGD",
    "rmsprop": "torch.optim.RMSprop",
    "adam": "torch.optim.Adam",
}


def build_optimizer(optimizer_cfg: Mapping[str, Any], params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """`optimizer_cfg` is a group entry such as conf/optimizer/adam.yaml; its `name` labels runs and is not
    passed on."""
    factory_cfg = {key: value for key, value in dict(optimizer_cfg).items() if key != "name"}
    factory = instantiate(factory_cfg)
    return factory(params=params)


def check_optimizer(optimizer_cfg: Mapping[str, Any], setting: str = "optimizer") -> None:
    """A known name whose class is the one that name stands for, finite numbers, and values torch accepts (tried on
    one dummy parameter, so a bad momentum or beta is caught before anything is written)."""
    cfg = dict(optimizer_cfg)
    name = one_of(f"{setting}.name", cfg.get("name"), OPTIMIZERS)
    if cfg.get("_target_") != OPTIMIZERS[name]:
        raise ConfigError(
            f"{setting}.name={name!r} names {OPTIMIZERS[name]}, but {setting}._target_={cfg.get('_target_')!r}; "
            f"choose the optimizer with {setting}=<name>"
        )
    positive_float(f"{setting}.lr", cfg.get("lr"))
    finite_numbers(setting, {k: v for k, v in cfg.items() if not k.startswith("_")})
    try:
        build_optimizer(cfg, [torch.nn.Parameter(torch.zeros(1))])
    except (ValueError, TypeError, InstantiationException) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[-1]
        raise ConfigError(f"{setting}: torch refuses these settings ({first})") from None
