"""The search space: which optimizer settings a study tunes, over which ranges, and how a trial's values become a
training config (or a `cnnlab-train` command line).

`tune.space` mirrors the config: `{optimizer: {lr: {low: 1e-4, high: 1.0, log: true}}}` tunes `optimizer.lr`. A leaf
is a range (`low`, `high`, optional `log`), or null for an opt-in entry left out; a list-valued argument such as
Adam's `betas` takes a list whose items are ranges or fixed numbers (`betas: [{low: 0.8, high: 0.95}, 0.999]`). A key
names a numeric setting of the optimizer's config group, or an argument its torch class takes that the group leaves
at torch's default (Adam's `betas`). Every range is checked before anything is written: known key, finite ends,
low < high, log only above zero, and torch accepting the optimizer at both ends.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hydra.utils import get_class
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from optuna.distributions import FloatDistribution

from cnnlab.checks import boolean, finite_number
from cnnlab.errors import ConfigError
from cnnlab.training.optimizers import check_optimizer

GROUP = "optimizer"  # the config group a space may tune
RANGE_KEYS = ("low", "high", "log")
SETTING = "tune.space"


@dataclass(frozen=True)
class Dimension:
    """One tuned number: `name` is the Optuna parameter (the setting's dotted key, plus `.<i>` for a list item)."""

    name: str
    key: str
    index: int | None
    low: float
    high: float
    log: bool


@dataclass(frozen=True)
class Space:
    dimensions: tuple[Dimension, ...]
    templates: dict[str, list[Any]]  # list-valued settings: their fixed items (given, or torch's defaults)

    @property
    def keys(self) -> list[str]:
        """The settings tuned (dotted keys), in order."""
        return list(dict.fromkeys(d.key for d in self.dimensions))

    @property
    def distributions(self) -> dict[str, FloatDistribution]:
        return {d.name: FloatDistribution(d.low, d.high, log=d.log) for d in self.dimensions}

    def values(self, params: Mapping[str, float]) -> dict[str, Any]:
        """Setting key -> the value a trial's `params` give it (a list for a list-valued setting)."""
        out: dict[str, Any] = {}
        for d in self.dimensions:
            if d.index is None:
                out[d.key] = float(params[d.name])
            else:
                out.setdefault(d.key, list(self.templates[d.key]))[d.index] = float(params[d.name])
        return out

    def apply(self, cfg: DictConfig, params: Mapping[str, float]) -> DictConfig:
        """A copy of `cfg` with the trial's values set."""
        out = copy.deepcopy(cfg)
        with open_dict(out):
            for key, value in self.values(params).items():
                OmegaConf.update(out, key, value, merge=False, force_add=True)
        return out

    def overrides(self, base: DictConfig, params: Mapping[str, float]) -> list[str]:
        """The command-line overrides that give `base` the trial's values (`+key=` for a setting `base` lacks)."""
        out = []
        for key, value in self.values(params).items():
            text = f"[{','.join(map(repr, value))}]" if isinstance(value, list) else repr(value)
            present = OmegaConf.select(base, key, default=None) is not None
            out.append(f"{'' if present else '+'}{key}={text}")
        return out

    def describe(self, params: Mapping[str, float]) -> str:
        """`lr 0.0123, betas [0.9, 0.999]`: a trial's values for log lines and tables."""
        return ", ".join(f"{key.rsplit('.', 1)[-1]} {_short(value)}" for key, value in self.values(params).items())


def _short(value: Any) -> str:
    return f"[{', '.join(f'{v:.4g}' for v in value)}]" if isinstance(value, list) else f"{value:.4g}"


def parse_space(space: Any, cfg: DictConfig) -> Space:
    """`tune.space` (plain data) checked against the composed config `cfg`."""
    if not isinstance(space, Mapping) or not space:
        raise ConfigError(
            f"{SETTING} must name at least one setting, e.g. {{optimizer: {{lr: {{low: 1e-4, high: 1}}}}}}"
        )
    dimensions: list[Dimension] = []
    templates: dict[str, list[Any]] = {}
    for key, leaf in _leaves(space, ""):
        default = _tunable_default(cfg, key)
        if isinstance(leaf, list):
            templates[key] = _list_template(key, leaf, default)
            dimensions += [_dimension(f"{key}.{i}", key, i, item) for i, item in enumerate(leaf) if _is_range(item)]
        else:
            if isinstance(default, list | tuple):
                raise ConfigError(f"{SETTING}.{key} is a list of {len(default)} numbers: give a list of ranges/numbers")
            dimensions.append(_dimension(key, key, None, leaf))
    if not dimensions:
        raise ConfigError(f"{SETTING} tunes nothing: give at least one range, e.g. tune.space.optimizer.lr")
    result = Space(tuple(dimensions), templates)
    _check_with_torch(result, cfg)
    return result


def _leaves(node: Mapping[str, Any], prefix: str) -> list[tuple[str, Any]]:
    """(dotted key, range or list) for each leaf of the nested space."""
    out = []
    for name, value in node.items():
        key = f"{prefix}{name}"
        if value is None:  # an opt-in entry left out
            continue
        if isinstance(value, list) or _is_range(value):
            out.append((key, value))
        elif isinstance(value, Mapping) and value:
            out += _leaves(value, f"{key}.")
        else:
            raise ConfigError(
                f"{SETTING}.{key}={value!r} must be a range {{low: <number>, high: <number>, log: <bool>}}"
            )
    return out


def _is_range(value: Any) -> bool:
    return isinstance(value, Mapping) and ("low" in value or "high" in value)


def _tunable_default(cfg: DictConfig, key: str) -> Any:
    """The value `key` has without tuning; a ConfigError naming the tunable settings when it is none of them."""
    group = cfg.get(GROUP)
    tunable = _tunable(group) if group is not None else {}
    name = key.removeprefix(f"{GROUP}.")
    if key.startswith(f"{GROUP}.") and name in tunable:
        return tunable[name]
    optimizer = group.get("name") if group is not None else None
    raise ConfigError(
        f"{SETTING}.{key} is not a setting this study can tune; the {optimizer} optimizer's numeric settings are: "
        + ", ".join(f"{GROUP}.{k}" for k in tunable)
    )


def _tunable(group: DictConfig) -> dict[str, Any]:
    """The optimizer's numeric settings: its group's, then its class's other numeric or tuple arguments (defaults)."""
    own = {k: v for k, value in group.items() if not str(k).startswith("_") and (v := _numbers(value)) is not None}
    try:
        parameters = list(inspect.signature(get_class(group["_target_"])).parameters.values())
    except (ImportError, ValueError, TypeError):
        parameters = []
    for p in parameters:
        if p.name not in own and (default := _numbers(p.default)) is not None:
            own[p.name] = default
    return own


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numbers(value: Any) -> float | list[float] | None:
    """A number, a list of numbers (from a tuple or ListConfig), or None for anything else."""
    if _numeric(value):
        return value
    if isinstance(value, list | tuple | ListConfig) and len(value) and all(_numeric(v) for v in value):
        return list(value)
    return None


def _list_template(key: str, leaf: list[Any], default: Any) -> list[Any]:
    if not isinstance(default, list):
        raise ConfigError(f"{SETTING}.{key}: {key} is a single number, so give one range, not a list")
    if len(leaf) != len(default):
        raise ConfigError(f"{SETTING}.{key} has {len(leaf)} items; {key} takes {len(default)}")
    if not any(_is_range(item) for item in leaf):
        raise ConfigError(f"{SETTING}.{key} has no range among its items: nothing to tune")
    template = []
    for i, item in enumerate(leaf):
        if not _is_range(item) and not _numeric(item):
            raise ConfigError(f"{SETTING}.{key}[{i}]={item!r} must be a range or a fixed number")
        template.append(None if _is_range(item) else float(item))
    return template


def _dimension(name: str, key: str, index: int | None, leaf: Mapping[str, Any]) -> Dimension:
    where = f"{SETTING}.{key}" + (f"[{index}]" if index is not None else "")
    if unknown := [k for k in leaf if k not in RANGE_KEYS]:
        raise ConfigError(f"{where}: unknown range key {', '.join(map(str, unknown))}; a range has low, high and log")
    low, high, log = leaf.get("low"), leaf.get("high"), leaf.get("log", False)
    for end, value in (("low", low), ("high", high)):
        finite_number(f"{where}.{end}", value)
    boolean(f"{where}.log", log)
    if low == high:
        raise ConfigError(f"{where}: the range [{low}, {high}] is empty; give low < high")
    if low > high:
        raise ConfigError(f"{where}: the range [{low}, {high}] is inverted; give low < high")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0, not {low}")
    return Dimension(name, key, index, float(low), float(high), log)


def _check_with_torch(space: Space, cfg: DictConfig) -> None:
    """Build the optimizer at the space's low and high corners, so a value torch refuses fails now, not in trial 5."""
    for end in ("low", "high"):
        params = {d.name: getattr(d, end) for d in space.dimensions}
        try:
            check_optimizer(space.apply(cfg, params)[GROUP])
        except ConfigError as err:
            raise ConfigError(f"{SETTING} at its {end} ends: {err}") from None
