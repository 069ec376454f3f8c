"""`cnnlab-tune`'s settings (the `tune` block of conf/tune.yaml), checked before anything is written, and the name
of the study they and the training config define."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from cnnlab.checks import one_of, positive_int, seed
from cnnlab.config import to_plain
from cnnlab.errors import ConfigError
from cnnlab.runs.layout import identity, subsets
from cnnlab.training.runner import check_train_settings
from cnnlab.tuning.space import Space, parse_space
from cnnlab.tuning.storage import Storage, check_storage, parse_storage

PRUNERS = ("median", "hyperband", "none")
# tpe: Optuna's TPE (random for the first tune.startup_trials trials); random: independent draws, which the expected
# best accuracy against the number of trials (the report's budget curves) assumes
SAMPLERS = ("tpe", "random")
# the settings of each pruner (conf/tune.yaml's `tune.pruner`); a setting of another pruner is ignored
PRUNER_SETTINGS = {"median": ("n_startup_trials", "n_warmup_steps"), "hyperband": ("min_resource", "reduction_factor")}


@dataclass(frozen=True)
class TuneSettings:
    trials: int  # the budget: complete + pruned (+ running) trials per study, whichever workers run them
    space: Space
    sampler: str  # one of SAMPLERS
    sampler_seed: int
    startup_trials: int  # TPE samples at random until this many trials finished
    pruner: dict[str, Any]  # name and that pruner's settings
    storage: Storage
    study_name: str
    n_jobs: int
    runs_dir: Path  # where trials' run directories go (not the report's runs_dir)
    seeds: list[int]  # the tuned setting is trained on these seeds afterwards (normal, tested runs)
    heartbeat_s: int | None
    epochs: int


def tune_settings(cfg: DictConfig, *, check_storage_now: bool = True) -> TuneSettings:
    """Every setting checked: the training config as `cnnlab-train` checks it, then the `tune` block."""
    check_train_settings(cfg)
    if cfg.overwrite:
        raise ConfigError(
            "overwrite=true: cnnlab-tune reuses and resumes run directories; to start afresh give a new "
            "tune.storage or tune.study_name and tune.runs_dir"
        )
    tune = cfg.tune
    trials = positive_int("tune.trials", tune.trials)
    # what the study's name derives from (`study_name`)
    protocol = {
        "space": parse_space(to_plain(tune.space) if tune.space is not None else None, cfg),
        "sampler": one_of("tune.sampler", tune.get("sampler", "tpe"), SAMPLERS),
        "sampler_seed": seed("tune.sampler_seed", tune.sampler_seed),
        "startup_trials": positive_int("tune.startup_trials", tune.startup_trials),
        "pruner": _pruner(to_plain(tune.pruner) if isinstance(tune.pruner, DictConfig) else tune.pruner),
    }
    storage = parse_storage(tune.storage)
    if check_storage_now:
        check_storage(storage)
    n_jobs = positive_int("tune.n_jobs", tune.n_jobs)
    seeds = _seeds(to_plain(tune.seeds) if tune.seeds is not None else [])
    heartbeat = None if tune.heartbeat_s is None else positive_int("tune.heartbeat_s", tune.heartbeat_s)
    if not isinstance(tune.runs_dir, str) or not tune.runs_dir:
        raise ConfigError(f"tune.runs_dir={tune.runs_dir!r} must be a folder")
    name = tune.study_name
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ConfigError(f"tune.study_name={name!r} must be a non-empty name, or null for the derived one")
    return TuneSettings(
        trials=trials,
        storage=storage,
        study_name=name or study_name(cfg, **protocol),
        n_jobs=n_jobs,
        runs_dir=Path(tune.runs_dir),
        seeds=seeds,
        heartbeat_s=heartbeat,
        epochs=cfg.trainer.epochs,
        **protocol,
    )


def check_tune(cfg: DictConfig) -> None:
    tune_settings(cfg)


def _pruner(pruner: Any) -> dict[str, Any]:
    if not isinstance(pruner, dict):
        raise ConfigError(f"tune.pruner={pruner!r} must be a mapping with a name: median, hyperband or none")
    name = one_of("tune.pruner.name", pruner.get("name"), PRUNERS)
    out: dict[str, Any] = {"name": name}
    for key in PRUNER_SETTINGS.get(name, ()):
        value = pruner.get(key)
        if key in ("n_startup_trials", "n_warmup_steps"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"tune.pruner.{key}={value!r} must be an integer >= 0")
            out[key] = value
        else:
            out[key] = positive_int(f"tune.pruner.{key}", value)
    if name == "hyperband" and out["reduction_factor"] < 2:
        raise ConfigError(f"tune.pruner.reduction_factor={out['reduction_factor']} must be at least 2")
    return out


def _seeds(seeds: Any) -> list[int]:
    if isinstance(seeds, int):
        seeds = [seeds]
    if not isinstance(seeds, list):
        raise ConfigError(f"tune.seeds={seeds!r} must be a list of seeds, e.g. [0,1,2,3,4] (or [] to only tune)")
    return sorted({seed(f"tune.seeds[{i}]", s) for i, s in enumerate(seeds)})


def study_name(
    cfg: DictConfig, *, space: Space, sampler: str, sampler_seed: int, startup_trials: int, pruner: dict[str, Any]
) -> str:
    """`<data>/<optimizer>[-bn]/e<epochs>-bs<batch>[-n<subset>][-t<test_subset>]-<hash>`: a run directory's name
    without the tuned settings (the learning rate), whose hash covers what the study's trials compute and how they
    are chosen: the training identity minus the tuned settings, the training seed, the space, the sampler and the
    pruner. The budget is not part of it, so `tune.trials` can be raised to extend a study."""
    plain = to_plain(train_config(cfg))
    ident = identity(plain)
    ident["optimizer"] = {k: v for k, v in ident["optimizer"].items() if f"optimizer.{k}" not in space.keys}
    protocol = {
        "seed": plain["seed"],
        "space": [(d.name, d.low, d.high, d.log) for d in space.dimensions],
        "templates": space.templates,
        "sampler": {"name": "tpe", "seed": sampler_seed, "startup_trials": startup_trials}
        if sampler == "tpe"
        else {"name": sampler, "seed": sampler_seed},
        "pruner": pruner,
    }
    blob = json.dumps({"identity": ident, "protocol": protocol}, sort_keys=True, default=str)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:8]
    data, trainer = plain["data"], plain["trainer"]
    family = plain["optimizer"]["name"] + ("-bn" if plain["model"].get("batch_norm") else "")
    settings = f"e{trainer['epochs']}-bs{data['batch_size']}{subsets(data)}"
    return f"{data['name']}/{family}/{settings}-{digest}"


def train_config(cfg: DictConfig, runs_dir: str | Path | None = None) -> DictConfig:
    """The training config inside a `tune` config (the `tune` block, and Hydra's own where present, dropped), its runs
    under `runs_dir` if given."""
    out = copy.deepcopy(cfg)
    with open_dict(out):
        out.pop("tune", None)
        out.pop("hydra", None)  # present where the command line is checked
        if runs_dir is not None:
            out.paths.runs_dir = str(runs_dir)
    return out
