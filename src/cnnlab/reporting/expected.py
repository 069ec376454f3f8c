"""The runs the report expects: each is a file in conf/experiment/report/, composed exactly as `cnnlab-train` would
compose it, so its run-directory name (and hash) is the one training writes to."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf.errors import OmegaConfBaseException

from cnnlab.config import compose_config, config_group_options, override_value, to_plain
from cnnlab.errors import ConfigError, first_line
from cnnlab.runs.layout import NON_IDENTITY_KEYS, config_name

EXPERIMENT_GROUP = "experiment/report"


@dataclass(frozen=True)
class Expected:
    """One configuration of the report: its key (experiment file), label, resolved train config and directory name."""

    key: str
    label: str
    config: dict[str, Any]
    name: str
    train_args: tuple[str, ...]  # what `cnnlab-train` needs besides the seed: this run's experiment file first

    def command(self, seeds: Sequence[int], experiment: str | None = None) -> str:
        """The `cnnlab-train` command for these seeds; `experiment` (e.g. experiment=report) replaces this run's own."""
        seed_arg = f"seed={','.join(map(str, seeds))}"
        multirun = ("-m",) if len(seeds) > 1 and experiment is None else ()
        args = (experiment, *self.train_args[1:]) if experiment else self.train_args
        return shlex.join(("cnnlab-train", *multirun, *args, seed_arg))


def _compose(overrides: Sequence[str], setting: str) -> dict[str, Any]:
    try:
        return to_plain(compose_config("train", overrides))
    except (ConfigError, OmegaConfBaseException) as err:
        raise ConfigError(f"{setting} does not compose with the train config: {first_line(err)}") from None


def default_paths() -> dict[str, str]:
    """The paths every command gets without overrides: a printed command names only paths that differ."""
    return _compose([], "conf/train.yaml")["paths"]


def output_dir_args(paths: Mapping[str, Any]) -> list[str]:
    """`paths.output_dir=<dir>` for a command the report prints, unless the report's output folder is the default."""
    return [] if paths["output_dir"] == default_paths()["output_dir"] else [f"paths.output_dir={paths['output_dir']}"]


def data_overrides(data: Mapping[str, Any]) -> tuple[str, ...]:
    """The `cnnlab-train` overrides that give its runs the report's `data` settings: `data=<name>` unless it is
    training's default dataset, then each setting that changes a run's identity and differs from that dataset's
    defaults. None for the defaults, so a printed command names only what differs."""
    name = data["name"]
    default_name = _compose([], "conf/train.yaml")["data"]["name"]
    defaults = _compose([f"data={name}"], f"data={name}")["data"]
    skip = NON_IDENTITY_KEYS["data"] | {"name"}
    changed = [
        f"data.{key}={override_value(value)}"
        for key, value in data.items()
        if key not in skip and value != defaults.get(key)
    ]
    return (*([] if name == default_name else [f"data={name}"]), *changed)


def expected_runs(
    runs: Mapping[str, Mapping[str, Any]],
    keys: Sequence[str],
    train_overrides: Sequence[str],
    runs_dir: str | Path,
    data: Mapping[str, Any],
) -> dict[str, Expected]:
    """Compose `train` with `+experiment/report=<key>`, the report's `data` and `train_overrides` for each key, in
    order. Every run must be on the report's dataset: `train_overrides` cannot switch it behind the report's back."""
    available = config_group_options(EXPERIMENT_GROUP)
    for key in keys:
        if key not in runs:
            raise ConfigError(f"tables name run {key!r}, which `runs` does not define; defined: {', '.join(runs)}")
        if key not in available:
            raise ConfigError(
                f"runs.{key} has no conf/{EXPERIMENT_GROUP}/{key}.yaml; available: {', '.join(available)}"
            )
    out = {}
    chosen = data_overrides(data)
    where = () if Path(runs_dir) == Path(default_paths()["runs_dir"]) else (f"paths.runs_dir={runs_dir}",)
    for key in dict.fromkeys(keys):
        args = (f"+{EXPERIMENT_GROUP}={key}", *chosen, *train_overrides)
        plain = _compose(args, f"train_overrides={list(train_overrides)}")
        if (trained_on := plain["data"]["name"]) != data["name"]:
            raise ConfigError(
                f"train_overrides={list(train_overrides)} train on {trained_on}, but the report is for "
                f"data={data['name']}; give the report data={trained_on} instead"
            )
        out[key] = Expected(key, str(runs[key].get("label", key)), plain, config_name(plain), (*args, *where))
    return out
