"""One study: its trials, each an ordinary run trained by `training.runner.train`, and the budget every worker shares.

A worker repeats: under the storage's budget lock, mark the trials of dead workers failed, count the trials that
spend the budget (complete, pruned and running), stop when they reach `tune.trials`, else ask for the next trial.
(`study.optimize` with Optuna's `MaxTrialsCallback` counts only after a trial, so workers asking at once would
overspend, and it asks outside our lock: hence ask-and-tell.)
Asking happens under the lock too, with a TPE sampler seeded from `tune.sampler_seed` and the number of trials spent
so far: a study run by one worker is reproducible (the same history gives the same next values, even after an
interruption, and a trial retried after a crash gets the values it had, so its run directory resumes), and workers
asking side by side never draw the same values. A failed trial spends nothing.

A trial trains with `test=False`: the objective is the final epoch's validation accuracy, the test set is never
read. After each epoch the pruning hook reports the validation accuracy and asks the pruner; a pruned trial's run
stops there, recorded as `pruned`, and the trial as PRUNED. The last epoch is never pruned: its training is done.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from omegaconf import DictConfig
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

from cnnlab.config import to_plain
from cnnlab.runs.layout import run_dir_for
from cnnlab.runs.status import RunStatus, read_metrics
from cnnlab.training.runner import train
from cnnlab.tuning.settings import TuneSettings, train_config
from cnnlab.tuning.storage import budget_lock, open_storage

log = logging.getLogger(__name__)

SPENDING = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)  # trials that count against the budget
OBJECTIVE = "final validation accuracy %"


def quiet_optuna() -> None:
    """Optuna's own log lines go through the command's logging (and its INFO lines, which repeat ours, are dropped)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()


def make_pruner(pruner: Mapping[str, Any], epochs: int) -> optuna.pruners.BasePruner:
    if pruner["name"] == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=pruner["n_startup_trials"], n_warmup_steps=pruner["n_warmup_steps"]
        )
    if pruner["name"] == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=pruner["min_resource"], max_resource=epochs, reduction_factor=pruner["reduction_factor"]
        )
    return optuna.pruners.NopPruner()


def make_sampler(settings: TuneSettings, spent: int) -> optuna.samplers.BaseSampler:
    """The sampler seeded from the study's seed and the number of trials spent: the same history gives the same next
    trial, whichever worker asks."""
    seed = int(np.random.SeedSequence([settings.sampler_seed, spent]).generate_state(1)[0])
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=settings.startup_trials)


def open_study(settings: TuneSettings, storage: BaseStorage | None = None, *, untuned: str = "") -> optuna.Study:
    """Create the study or load it, in `storage` (by default the one `tune.storage` names; a worker keeps the one it
    opened for its trials' heartbeats). `untuned`: the untuned configuration's run directory name, kept with a new
    study."""
    if storage is None:
        storage = open_storage(settings.storage, heartbeat_s=settings.heartbeat_s)
    with budget_lock(settings.storage):
        study = optuna.create_study(
            storage=storage,
            study_name=settings.study_name,
            direction="maximize",
            pruner=make_pruner(settings.pruner, settings.epochs),
            load_if_exists=True,
        )
        if "objective" not in study.user_attrs:
            study.set_user_attr("objective", OBJECTIVE)
            study.set_user_attr("untuned_configuration", untuned)
            study.set_user_attr("sampler", settings.sampler)
    return study


# --- workers -------------------------------------------------------------------------------------------------------


def _start_ticks(pid: int) -> str | None:
    """When a process started (Linux: clock ticks since boot), so a reused pid is not taken for the same process.
    (Optuna's heartbeat cannot replace this check: a journal has none, and it fails a trial only after its grace.)"""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def this_worker() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _start_ticks(os.getpid())}


def _is_gone(worker: Any) -> bool:
    """Whether a trial's worker process on this machine no longer runs (one on another machine: unknown, so no)."""
    if not isinstance(worker, dict) or worker.get("host") != socket.gethostname():
        return False
    pid, start = worker.get("pid"), worker.get("start")
    if start is not None and Path("/proc/self/stat").exists():
        return _start_ticks(pid) != start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def fail_abandoned(study: optuna.Study) -> None:
    """Mark failed the running trials whose worker is gone: a process of this machine that ended, or (database
    storages with a heartbeat) one whose heartbeat stopped. Their budget is spent again by a later trial."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if _is_gone(trial.user_attrs.get("worker")):
            try:
                study.tell(trial.number, state=TrialState.FAIL)
            except UpdateFinishedTrialError:
                continue
            log.warning(
                "%s trial %d: its worker (pid %s) is gone; marked failed",
                study.study_name,
                trial.number,
                trial.user_attrs["worker"].get("pid"),
            )


def next_trial(study: optuna.Study, settings: TuneSettings) -> optuna.Trial | None:
    """The next trial of the budget, or None when the budget is spent (by any worker)."""
    with budget_lock(settings.storage):
        fail_abandoned(study)
        spent = len(study.get_trials(deepcopy=False, states=SPENDING))
        if spent >= settings.trials:
            return None
        study.sampler = make_sampler(settings, spent)
        with warnings.catch_warnings():  # its heartbeat is run here as study.optimize would (`heartbeat`)
            warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with Study.optimize")
            trial = study.ask(settings.space.distributions)
        trial.set_user_attr("worker", this_worker())
    # a server storage has no budget lock: of two workers that asked at once, the later one drops its trial
    ahead = [t for t in study.get_trials(deepcopy=False, states=SPENDING) if t.number < trial.number]
    if len(ahead) >= settings.trials:
        trial.set_user_attr("over_budget", True)
        study.tell(trial, state=TrialState.FAIL)
        return None
    return trial


@dataclass
class PruningHook:
    """The engine's `on_epoch`: report the epoch's validation accuracy to the trial and ask the pruner."""

    trial: optuna.Trial
    epochs: int
    reported: set[int] = field(default_factory=set)  # epochs told to the trial already

    def report(self, entry: Mapping[str, Any]) -> None:
        if entry["epoch"] not in self.reported:
            self.trial.report(_finite(entry["val_accuracy"]), step=entry["epoch"])
            self.reported.add(entry["epoch"])

    def __call__(self, entry: Mapping[str, Any]) -> bool:
        self.report(entry)
        return entry["epoch"] < self.epochs and self.trial.should_prune()


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


@contextmanager
def heartbeat(storage: BaseStorage, study: optuna.Study, trial: optuna.Trial) -> Iterator[None]:
    """The trial's heartbeat, recorded every `tune.heartbeat_s` while it trains (database storages): what
    `study.optimize` runs around each trial, which ask-and-tell leaves to the caller (Optuna's thread for it is
    private, so this is ours, on the storage's public `record_heartbeat`)."""
    interval = storage.get_heartbeat_interval() if isinstance(storage, RDBStorage) else None
    if interval is None:
        yield
        return
    study_id = storage.get_study_id_from_name(study.study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
    stop = threading.Event()

    def beat() -> None:
        while True:
            storage.record_heartbeat(trial_id)
            if stop.wait(timeout=interval):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat of trial {trial.number}")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def run_trial(
    study: optuna.Study, storage: BaseStorage, trial: optuna.Trial, cfg: DictConfig, settings: TuneSettings
) -> FrozenTrial:
    """Train the trial's setting into its run directory (resuming what an earlier attempt left) and tell the study."""
    trial_cfg = settings.space.apply(train_config(cfg, settings.runs_dir), trial.params)
    run_dir = run_dir_for(to_plain(trial_cfg))
    trial.set_user_attr("run_dir", str(run_dir))
    hook = PruningHook(trial, settings.epochs)
    for entry in read_metrics(run_dir).get("history", []):  # epochs an earlier attempt trained are not trained again
        hook.report(entry)
    try:
        with heartbeat(storage, study, trial):
            result = train(trial_cfg, on_epoch=hook, test=False)
    except BaseException:
        study.tell(trial, state=TrialState.FAIL)
        raise
    history = result.metrics.get("history") or []
    for entry in history:  # a finished run reused as it was reports its epochs here
        hook.report(entry)
    trial.set_user_attr("run_status", str(result.status))
    if result.status == RunStatus.PRUNED:
        return study.tell(trial, state=TrialState.PRUNED)
    return study.tell(trial, _finite(history[-1]["val_accuracy"]))


def work(cfg: DictConfig, settings: TuneSettings, study: optuna.Study, storage: BaseStorage) -> int:
    """Run trials of the study in `storage` (the one it was opened in) until its budget is spent; the number this
    worker ran."""
    ran = 0
    while (trial := next_trial(study, settings)) is not None:
        log.info("%s trial %d: %s", settings.study_name, trial.number, settings.space.describe(trial.params))
        _log_outcome(run_trial(study, storage, trial, cfg, settings), settings)
        ran += 1
    return ran


def _log_outcome(trial: FrozenTrial, settings: TuneSettings) -> None:
    if trial.state == TrialState.PRUNED:
        step = max(trial.intermediate_values, default=0)
        outcome, accuracy = f"pruned after epoch {step}", trial.intermediate_values.get(step, float("nan"))
    else:
        outcome, accuracy = trial.user_attrs.get("run_status", ""), trial.value
    values = settings.space.describe(trial.params)
    log.info(
        "%s trial %d %s (%s): validation accuracy %.2f%%", settings.study_name, trial.number, outcome, values, accuracy
    )


@dataclass(frozen=True)
class StudyState:
    """A study's trials by state, and its best complete trial (ties: the earliest)."""

    complete: int
    pruned: int
    running: int
    failed: int  # crashed or abandoned trials; they spend nothing
    best: FrozenTrial | None

    @property
    def spent(self) -> int:
        return self.complete + self.pruned + self.running

    def counts(self) -> str:
        parts = [f"{self.complete} complete", f"{self.pruned} pruned"]
        parts += [f"{n} {name}" for n, name in ((self.running, "running"), (self.failed, "failed")) if n]
        return ", ".join(parts)


def study_state(study: optuna.Study) -> StudyState:
    trials = study.get_trials(deepcopy=False)
    count = Counter(t.state for t in trials)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: (t.value, -t.number), default=None)
    return StudyState(len(complete), count[TrialState.PRUNED], count[TrialState.RUNNING], count[TrialState.FAIL], best)
