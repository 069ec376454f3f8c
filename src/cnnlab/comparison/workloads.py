"""The comparison's runs and studies: each optimizer on each workload, composed from `experiment=comparison` exactly
as `cnnlab-train` and `cnnlab-tune` compose them, then found on disk and in the tuning storage.

The report's `comparison` settings (conf/report.yaml) name the workloads (each a list of training arguments), the
optimizers, the seeds, the accuracy targets per dataset and the range of the performance profile's τ; they are
checked here with one line naming the setting at fault.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig
from optuna.trial import TrialState

from cnnlab.checks import names_from, percentage, seed
from cnnlab.config import compose_config, to_plain
from cnnlab.errors import ConfigError
from cnnlab.reporting.collect import Run, read_run
from cnnlab.runs.layout import run_dir_for
from cnnlab.runs.status import RunStatus
from cnnlab.training.optimizers import OPTIMIZERS
from cnnlab.tuning.runner import seed_config
from cnnlab.tuning.settings import tune_settings
from cnnlab.tuning.storage import find_study
from cnnlab.tuning.study import study_state

EXPERIMENT = "experiment=comparison"


@dataclass(frozen=True)
class ComparisonSettings:
    workloads: dict[str, list[str]]  # name -> training arguments
    optimizers: list[str]
    seeds: list[int]
    targets: dict[str, list[float]]  # dataset -> validation accuracy targets, percent
    tau_max: float
    train_overrides: list[str]  # the report's, added to every run's command
    tune_overrides: list[str]  # what the studies were run with besides the training arguments


def _targets(targets: Any) -> dict[str, list[float]]:
    if not isinstance(targets, Mapping) or not targets:
        raise ConfigError(f"comparison.targets={targets!r} must map each dataset to its targets, e.g. {{mnist: [98]}}")
    out = {}
    for dataset, values in targets.items():
        values = list(values) if isinstance(values, Sequence) and not isinstance(values, str) else [values]
        if not values:
            raise ConfigError(f"comparison.targets.{dataset} is empty; give at least one target in (0, 100]")
        out[str(dataset)] = sorted(percentage(f"comparison.targets.{dataset}", v) for v in values)
    return out


def _workloads(workloads: Any) -> dict[str, list[str]]:
    if not isinstance(workloads, Mapping) or not workloads:
        raise ConfigError(f"comparison.workloads={workloads!r} must name each workload with its training arguments")
    for name, args in workloads.items():
        if isinstance(args, str) or not isinstance(args, Sequence):
            raise ConfigError(
                f"comparison.workloads.{name}={args!r} must be a list of training arguments, e.g. [data=mnist]"
            )
    return {str(k): [str(a) for a in v] for k, v in workloads.items()}


def comparison_settings(cfg: DictConfig) -> ComparisonSettings:
    """The report's `comparison` block, checked."""
    block = to_plain(cfg.comparison)
    optimizers = names_from("comparison.optimizers", block.get("optimizers"), list(OPTIMIZERS))
    if len(optimizers) < 2:
        raise ConfigError(f"comparison.optimizers={list(optimizers)} must list at least two optimizers to compare")
    seeds = block.get("seeds")
    if not isinstance(seeds, list) or not seeds:
        raise ConfigError(f"comparison.seeds={seeds!r} must list at least one seed")
    tau_max = block.get("tau_max")
    if isinstance(tau_max, bool) or not isinstance(tau_max, (int, float)) or not 1 < tau_max < math.inf:
        raise ConfigError(f"comparison.tau_max={tau_max!r}: the τ range [1, tau_max] is empty; give a number above 1")
    return ComparisonSettings(
        workloads=_workloads(block.get("workloads")),
        optimizers=list(optimizers),
        seeds=sorted({seed(f"comparison.seeds[{i}]", s) for i, s in enumerate(seeds)}),
        targets=_targets(block.get("targets")),
        tau_max=float(tau_max),
        train_overrides=[str(o) for o in to_plain(cfg.train_overrides) or []],
        tune_overrides=[str(o) for o in block.get("tune_overrides") or []],
    )


@dataclass
class Cell:
    """One optimizer on one workload: its runs by seed (finished, diverged or otherwise), and its study if any."""

    workload: str
    optimizer: str
    dataset: str
    batch_norm: bool
    train_args: tuple[str, ...]
    runs: dict[int, Run] = field(default_factory=dict)
    study: optuna.Study | None = None
    sampler: str = ""
    tuned: dict[int, Run] = field(default_factory=dict)  # the tuned setting's runs on the study's seeds

    def completed(self, runs: Mapping[int, Run] | None = None) -> dict[int, Run]:
        """Seeds whose run ended by finishing or diverging (a diverged run never reaches a target afterwards)."""
        runs = self.runs if runs is None else runs
        return {s: r for s, r in runs.items() if r.status in (RunStatus.FINISHED, RunStatus.DIVERGED)}

    def trial_values(self) -> list[float]:
        """The complete trials' objective (final validation accuracy): what one more trial would draw from."""
        if self.study is None:
            return []
        return [t.value for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]

    def pruned_trials(self) -> int:
        return 0 if self.study is None else len(self.study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)))


def _compose(name: str, args: Sequence[str], setting: str) -> DictConfig:
    try:
        return compose_config(name, args)
    except ConfigError as err:
        raise ConfigError(f"{setting} does not compose with conf/{name}.yaml: {err}") from None


def _runs(runs_dir: Path, plain: Mapping[str, Any], seeds: Sequence[int]) -> dict[int, Run]:
    """The runs of `plain`'s configuration on `seeds` found under `runs_dir`, read as the report's tables read them."""
    found = {}
    for s in seeds:
        run = read_run(run_dir_for({**plain, "seed": s, "paths": {**plain["paths"], "runs_dir": str(runs_dir)}}))
        if run.metrics:
            found[s] = run
    return found


def find_cells(settings: ComparisonSettings, runs_dir: Path, where: Sequence[str] = ()) -> list[Cell]:
    """Every (workload, optimizer) with the runs it has under `runs_dir`, and its tuning study where one exists;
    `where` (e.g. paths.output_dir=...) places the studies' storage as it placed the report's."""
    cells, storages = [], {}
    for workload, args in settings.workloads.items():
        for optimizer in settings.optimizers:
            train_args = (EXPERIMENT, *args, f"optimizer={optimizer}", *settings.train_overrides)
            plain = to_plain(_compose("train", train_args, f"comparison.workloads.{workload}"))
            cell = Cell(workload, optimizer, plain["data"]["name"], bool(plain["model"]["batch_norm"]), train_args)
            cell.runs = _runs(runs_dir, plain, settings.seeds)
            _attach_study(cell, settings, runs_dir, where, storages)
            cells.append(cell)
    return cells


def _attach_study(
    cell: Cell, settings: ComparisonSettings, runs_dir: Path, where: Sequence[str], storages: dict[str, Any]
) -> None:
    tune_cfg = _compose("tune", (*cell.train_args, *settings.tune_overrides, *where), "comparison.tune_overrides")
    tune = tune_settings(tune_cfg, check_storage_now=False)
    cell.study = find_study(tune.storage, tune.study_name, storages)
    if cell.study is None:
        return
    cell.sampler = tune.sampler
    best = study_state(cell.study).best
    if best is None or not tune.seeds:
        return
    plain = to_plain(seed_config(tune_cfg, tune, best.params, tune.seeds[0]))
    cell.tuned = _runs(runs_dir, plain, tune.seeds)


def train_commands(cells: Sequence[Cell], settings: ComparisonSettings, where: Sequence[str] = ()) -> list[str]:
    """One command per workload that trains its missing runs (finished ones are reused): the workload's dataset and
    batch norm given outright, since `experiment=comparison` would otherwise sweep both."""
    commands = []
    for workload, args in settings.workloads.items():
        lacking = [(c, s) for c in cells if c.workload == workload for s in settings.seeds if s not in c.completed()]
        if not lacking:
            continue
        cell = lacking[0][0]
        optimizers = ",".join(dict.fromkeys(c.optimizer for c, _ in lacking))
        seeds = ",".join(map(str, sorted({s for _, s in lacking})))
        own = [a for a in args if a.partition("=")[0] not in ("data", "model.batch_norm")]
        fixed = [f"data={cell.dataset}", f"model.batch_norm={str(cell.batch_norm).lower()}", *own]
        line = (EXPERIMENT, *fixed, f"optimizer={optimizers}", *settings.train_overrides, *where, f"seed={seeds}")
        commands.append(shlex.join(("cnnlab-train", *line)))
    return commands


def tune_command(settings: ComparisonSettings, where: Sequence[str] = ()) -> str:
    return shlex.join(("cnnlab-tune", EXPERIMENT, *settings.train_overrides, *settings.tune_overrides, *where))
