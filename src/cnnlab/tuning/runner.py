"""`tune(cfg)`: what `cnnlab-tune` calls. Spend one study's budget (in this process, or in `tune.n_jobs` worker
processes), then train the best setting on `tune.seeds` as ordinary, tested runs: the run directories
`cnnlab-train` would write for that setting, in `paths.runs_dir`, where the report finds them."""

from __future__ import annotations

import logging
import multiprocessing
import statistics
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict
from optuna.trial import FrozenTrial

from cnnlab.config import to_plain
from cnnlab.errors import RunInUseError
from cnnlab.runs.layout import config_name
from cnnlab.tracking.mlflow import study_parent
from cnnlab.training.engine import RunResult
from cnnlab.training.runner import train
from cnnlab.tuning.settings import TuneSettings, train_config, tune_settings
from cnnlab.tuning.storage import open_storage
from cnnlab.tuning.study import StudyState, open_study, quiet_optuna, study_state, work

log = logging.getLogger(__name__)

OBJECTIVE_TEXT = "final-epoch validation accuracy (the test set is not read)"


@dataclass(frozen=True)
class TuneResult:
    study_name: str
    state: StudyState
    seed_runs: list[RunResult] = field(default_factory=list)

    @property
    def best_value(self) -> float | None:
        return self.state.best.value if self.state.best else None


def seed_config(cfg: DictConfig, settings: TuneSettings, params: dict[str, float], seed: int) -> DictConfig:
    """The training config of the tuned setting on `seed`: exactly `cnnlab-train <its overrides> seed=<seed>`."""
    out = settings.space.apply(train_config(cfg), params)
    with open_dict(out):
        out.seed = seed
    return out


def tune(cfg: DictConfig) -> TuneResult:
    settings = tune_settings(cfg)
    quiet_optuna()
    storage = open_storage(settings.storage, heartbeat_s=settings.heartbeat_s)
    study = open_study(settings, storage, untuned=config_name(to_plain(train_config(cfg))))
    log.info(
        "study %s in %s: %d trials of %s", settings.study_name, settings.storage.shown, settings.trials, OBJECTIVE_TEXT
    )
    with study_parent(cfg, settings.study_name):  # logger=mlflow: the study one parent run, its trials beneath
        if settings.n_jobs == 1:
            work(cfg, settings, study, storage)
        else:
            _work_in_processes(cfg, settings)
    state = study_state(study)
    best = state.best
    summary = f"study {settings.study_name}: {state.spent} of {settings.trials} trials spent ({state.counts()})"
    if best is not None:
        summary += f"; best trial {best.number}: {settings.space.describe(best.params)}, {best.value:.2f}%"
    log.info("%s", summary)
    if state.running:
        log.info(
            "%s: %d trials still run in other workers; the last worker to finish trains the seeds",
            settings.study_name,
            state.running,
        )
        return TuneResult(settings.study_name, state)
    if best is None:
        log.warning(
            "%s: no trial completed, so there is no tuned setting to train on seeds %s",
            settings.study_name,
            settings.seeds,
        )
        return TuneResult(settings.study_name, state)
    return TuneResult(settings.study_name, state, _train_seeds(cfg, settings, best))


def _train_seeds(cfg: DictConfig, settings: TuneSettings, best: FrozenTrial) -> list[RunResult]:
    """Train the best setting on each of `tune.seeds` (finished runs are reused; one another worker is training now
    is left to it)."""
    results = []
    for seed in settings.seeds:
        try:
            results.append(train(seed_config(cfg, settings, best.params, seed)))
        except RunInUseError as err:
            log.info("seed %d: %s", seed, err)
    accuracies = [r.metrics["test"]["accuracy"] for r in results if "test" in r.metrics]
    if accuracies:
        spread = f" ± {statistics.stdev(accuracies):.2f}" if len(accuracies) > 1 else ""
        log.info(
            "%s: tuned setting (%s) on %d seeds: test accuracy %.2f%s%%",
            settings.study_name,
            settings.space.describe(best.params),
            len(accuracies),
            statistics.fmean(accuracies),
            spread,
        )
    return results


def _work_in_processes(cfg: DictConfig, settings: TuneSettings) -> None:
    """`tune.n_jobs` worker processes on the study, one torch thread each (as `launcher=joblib` runs jobs)."""
    plain = to_plain(cfg)
    plain["trainer"]["num_threads"] = 1
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=settings.n_jobs, mp_context=context) as pool:
        list(pool.map(_worker, [plain] * settings.n_jobs))  # a worker's error is raised here


def _worker(plain: dict[str, Any]) -> int:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s", datefmt="%H:%M:%S")
    quiet_optuna()
    cfg = OmegaConf.create(plain)
    settings = tune_settings(cfg, check_storage_now=False)
    storage = open_storage(settings.storage, heartbeat_s=settings.heartbeat_s)
    study = open_study(settings, storage)
    return work(cfg, settings, study, storage)
