"""MLflow tracking (`logger=mlflow`): each run an MLflow run, a sweep or a tuning study a parent with its runs beneath.

The run directory stays the source of truth; MLflow gets a copy. The MLflow run id is kept in the run directory
(`mlflow.json`), so a killed run that is resumed continues the same MLflow run, and the epochs it already logged (read
back from the store) are never logged twice. The run's status is read from its metrics.json when it closes, so the
engine never tells the logger how a run ended: finished/trained -> FINISHED, failed/diverged -> FAILED, pruned ->
KILLED (tag `cnnlab.status` names the exact status).

A parent's id reaches its children through the environment variable `CNNLAB_MLFLOW_PARENT_RUN_ID`: it is set in the
process that starts a sweep or a study before any job or worker process starts, and every process started from it
(joblib's workers, a study's worker processes, sbatch's jobs) inherits it. Each run reads it when it starts and sends
it to its tracking process (`cnnlab.tracking.process`) with the run's other settings.

Tracking never stops a run: when the store stops answering mid-run, one line says tracking stopped and the run
carries on without it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from cnnlab.atomic import write_json
from cnnlab.errors import ConfigError
from cnnlab.runs.layout import CHECKPOINT, config_name
from cnnlab.runs.status import RunStatus, read_metrics

log = logging.getLogger(__name__)
T = TypeVar("T")

PARENT_ENV = "CNNLAB_MLFLOW_PARENT_RUN_ID"
RUN_ID_FILE = "mlflow.json"
SETTING = "logger.mlflow.tracking_uri"
# what metrics.json's history calls an epoch's numbers -> their MLflow metric names
EPOCH_METRICS = ("train_loss", "val_loss", "val_accuracy", "images_per_s", "epoch_time_s")
# the validations during an epoch (trainer.eval_every), logged as step_<name> with the optimizer step as MLflow's step
STEP_METRICS = ("val_loss", "val_accuracy", "images_seen", "train_seconds")
RUN_ARTIFACTS = (
    "metrics.json",
    "config.yaml",
    "history.csv",
    "classification_report.txt",
    "confusion_matrix.csv",
    "confusion_matrix.png",
    "curves.png",
)
MLFLOW_STATUS = {
    RunStatus.FINISHED: "FINISHED",
    RunStatus.TRAINED: "FINISHED",
    RunStatus.PRUNED: "KILLED",
    RunStatus.DIVERGED: "FAILED",
    RunStatus.FAILED: "FAILED",
    RunStatus.RUNNING: "FAILED",  # closed without a final status: the process is going down
}
HEALTH_TIMEOUT_S = 5


def require_mlflow(setting: str) -> None:
    """One line naming the setting that asked for MLflow, where the package is not installed."""
    if importlib.util.find_spec("mlflow") is None:
        raise ConfigError(f"{setting} needs the mlflow package: pip install -e '.[mlflow]'")


def sqlite_file(uri: str) -> Path | None:
    """The database file of a local store (sqlite:///<file>); None for a server."""
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def check_tracking_uri(uri: Any, setting: str = SETTING) -> None:
    """Reject a tracking URI that is malformed, or a server that does not answer, before anything is written."""
    require_mlflow(setting)
    text = str(uri)
    parsed = urlparse(text)
    if parsed.scheme in ("http", "https") and parsed.netloc:
        import requests

        url = text.rstrip("/") + "/health"
        try:
            requests.get(url, timeout=HEALTH_TIMEOUT_S).raise_for_status()
        except requests.RequestException as err:
            raise ConfigError(f"{setting}={text}: no MLflow server answered at {url} ({type(err).__name__})") from None
        return
    database = sqlite_file(text)
    if database is not None and text != "sqlite:///":
        existing = next(p for p in database.parents if p.exists())
        if not os.access(existing, os.W_OK):
            raise ConfigError(f"{setting}={text}: cannot create the store, {existing} is not writable")
        return
    raise ConfigError(f"{setting}={text!r} is not a tracking URI; use sqlite:///<file> or http(s)://<host>:<port>")


@contextlib.contextmanager
def quiet_mlflow() -> Iterator[None]:
    """MLflow's (and its migrations') INFO lines left out, such as its word that it creates a new store's tables."""
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def open_client(settings: Mapping[str, Any]) -> tuple[Any, str]:
    """A client on the configured store and the id of the configured experiment (created on first use)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    # MLflow retries a failed request for minutes by default; a tracking server that is gone should cost seconds
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    database = sqlite_file(str(settings["tracking_uri"]))
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri=str(settings["tracking_uri"]))
    name = str(settings["experiment"])
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        # a local store keeps its artifacts in a folder beside its database; a server decides for itself
        artifacts = None if database is None else str(database.parent / "artifacts")
        try:
            return client, client.create_experiment(name, artifact_location=artifacts)
        except MlflowException:  # another process created it at the same moment
            experiment = client.get_experiment_by_name(name)
    return client, experiment.experiment_id


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested config as dotted names (`optimizer.lr`), the way Hydra overrides name its settings."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)
    return out


def git_commit() -> str | None:
    """The commit cnnlab's source is at, where it sits in a git checkout."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def run_tags(config: Mapping[str, Any], run_dir: Path, parent: str | None) -> dict[str, str]:
    from cnnlab import __version__

    tags = {
        "mlflow.runName": f"{config_name(config)}/seed{config['seed']}",
        "cnnlab.kind": "run",
        "cnnlab.configuration": config_name(config),
        "cnnlab.seed": str(config["seed"]),
        "cnnlab.run_dir": str(run_dir),
        "cnnlab.version": __version__,
    }
    if commit := git_commit():
        tags["mlflow.source.git.commit"] = commit
    if parent:
        tags["mlflow.parentRunId"] = parent
    return tags


class RunTracker:
    """One run directory's MLflow run: continued when the directory records one, else started (with the epochs the
    run directory already holds, so a run resumed into a fresh MLflow run still shows all of them). It runs in the
    tracking process (`cnnlab.tracking.process`), never in the training process."""

    def __init__(
        self,
        settings: Mapping[str, Any],
        run_dir: Path,
        config: Mapping[str, Any],
        parent: str | None,
        wanted: Callable[[], bool] = lambda: True,
    ):
        """`wanted` is asked once the store is open (seconds, for a new store), before a run is started or continued:
        False (the training process is gone) leaves the store as it was, for the run's resume to continue."""
        self.settings, self.run_dir, self.parent, self.wanted = settings, run_dir, parent, wanted
        self.client: Any = None
        self.run_id = ""
        self.logged: set[int] = set()  # epochs the store already holds
        self._guard("start", lambda: self._start(config))

    def _guard(self, what: str, action: Any) -> None:
        """Do `action` unless tracking stopped; on the first failure say once that it stopped."""
        if self.client is None and what != "start":
            return
        try:
            action()
        except Exception as err:  # noqa: BLE001 - any failure of the store ends tracking, never the run
            self.client = None
            log.warning(
                "MLflow tracking stopped (%s failed: %s); the run goes on and %s keeps its results",
                what,
                f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:200],
                self.run_dir,
            )

    def _start(self, config: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        client, experiment_id = open_client(self.settings)
        if not self.wanted():
            return
        uri = str(self.settings["tracking_uri"])
        recorded = _recorded_run(self.run_dir, uri)
        if recorded and (run := _active_run(client, recorded)):
            self.run_id = recorded
            client.update_run(recorded, status="RUNNING")
            self.logged = {m.step for m in client.get_metric_history(recorded, EPOCH_METRICS[0])}
        else:
            if recorded:
                log.warning(
                    "MLflow run %s recorded in %s is not in %s; starting a fresh one", recorded, self.run_dir, uri
                )
            run = client.create_run(experiment_id, tags=run_tags(config, self.run_dir, self.parent))
            self.run_id = run.info.run_id
            # recorded at once, so that a run killed from here on is continued, never started twice
            write_json(self.run_dir / RUN_ID_FILE, {"run_id": self.run_id, "tracking_uri": uri})
        if not run.data.params:  # a new run, or one killed before its params were logged
            # the client sends them in batches of the 100 a request may carry
            params = [Param(key, value[:6000]) for key, value in sorted(flatten(config).items())]
            client.log_batch(self.run_id, params=params)
        self.client = client
        log.info("MLflow run %s in %s", self.run_id, uri)
        for entry in read_metrics(self.run_dir).get("history", []):  # epochs trained before (resumed, untracked)
            self.log_epoch(entry)

    def log_epoch(self, record: Mapping[str, Any], at_ms: int | None = None) -> None:
        """One epoch's metrics, stamped `at_ms` (when the training process reported it; default now)."""
        epoch = int(record["epoch"])
        if epoch in self.logged:
            return
        self._log_metrics({key: record[key] for key in EPOCH_METRICS}, epoch, at_ms)
        for point in record.get("evals", ()):  # trainer.eval_every: validation during the epoch, by optimizer step
            self._log_metrics({f"step_{key}": point[key] for key in STEP_METRICS}, point["step"], at_ms)
        self.logged.add(epoch)

    def log_test(self, epoch: int, accuracy: float, loss: float, at_ms: int | None = None) -> None:
        self._log_metrics({"test_accuracy": accuracy, "test_loss": loss}, epoch, at_ms)

    def _log_metrics(self, values: Mapping[str, float], step: int, at_ms: int | None) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000) if at_ms is None else at_ms
        metrics = [Metric(key, float(value), stamp, step) for key, value in values.items()]
        self._guard("logging metrics", lambda: self.client.log_batch(self.run_id, metrics=metrics))

    def close(self) -> None:
        """End the MLflow run with the status metrics.json records, its files attached."""
        self._guard("closing the run", self._close)

    def _close(self) -> None:
        status = RunStatus(read_metrics(self.run_dir).get("status", RunStatus.FAILED))
        self.client.set_tag(self.run_id, "cnnlab.status", str(status))
        checkpoint = self.run_dir / CHECKPOINT
        if checkpoint.exists():
            self.client.set_tag(self.run_id, "cnnlab.checkpoint", str(checkpoint))
        for name in RUN_ARTIFACTS:
            if (self.run_dir / name).exists():
                self.client.log_artifact(self.run_id, str(self.run_dir / name))
        if self.settings.get("log_checkpoint") and checkpoint.exists():
            self.client.log_artifact(self.run_id, str(checkpoint))
        self.client.set_terminated(self.run_id, status=MLFLOW_STATUS[status])


def _recorded_run(run_dir: Path, uri: str) -> str | None:
    """The MLflow run id the run directory records for this store (another store's id means nothing here)."""
    try:
        recorded = json.loads((run_dir / RUN_ID_FILE).read_text())
    except (OSError, ValueError):
        return None
    return recorded.get("run_id") if recorded.get("tracking_uri") == uri else None


def _active_run(client: Any, run_id: str) -> Any:
    """The run, unless the store has no such run or it was deleted."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        return None
    return run if run.info.lifecycle_stage == "active" else None


# --- parents: a sweep, a study -------------------------------------------------------------------------------------


def start_parent(
    settings: Mapping[str, Any], name: str, tags: Mapping[str, str], *, reuse: bool = False
) -> tuple[str, str | None]:
    """Start (or, with `reuse`, continue the one tagged alike) a parent run and make it PARENT_ENV, for the children
    to nest under. Returns its id and the PARENT_ENV it replaced, for `end_parent` to put back.

    A parent started inside another (a study in a sweep) becomes its child."""
    check_tracking_uri(settings["tracking_uri"])
    client, experiment_id = open_client(settings)
    tags = {"mlflow.runName": name, **tags}
    if parent := os.environ.get(PARENT_ENV):
        tags["mlflow.parentRunId"] = parent
    query = " and ".join(f"tags.`{key}` = '{value}'" for key, value in tags.items() if key.startswith("cnnlab."))
    found = client.search_runs([experiment_id], filter_string=query, max_results=1) if reuse else []
    if found:
        run_id = found[0].info.run_id
        client.update_run(run_id, status="RUNNING")
    else:
        run_id = client.create_run(experiment_id, tags=tags).info.run_id
    os.environ[PARENT_ENV] = run_id
    return run_id, parent


def end_parent(settings: Mapping[str, Any], run_id: str, previous: str | None) -> None:
    """Put PARENT_ENV back to `previous`, then end the parent: FAILED when any child's run failed (crashed); a
    diverged child is an outcome of the sweep, not its failure."""
    if previous is None:
        os.environ.pop(PARENT_ENV, None)
    else:
        os.environ[PARENT_ENV] = previous
    client, experiment_id = open_client(settings)
    children = client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{run_id}'")
    failed = any(child.data.tags.get("cnnlab.status") == str(RunStatus.FAILED) for child in children)
    client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")


@contextlib.contextmanager
def study_parent(cfg: Mapping[str, Any], study_name: str) -> Iterator[str | None]:
    """A tuning study's parent run (no-op without `logger.mlflow`), continued when the study is resumed: its trials,
    started in this process or processes it starts, nest beneath."""
    settings = (cfg.get("logger") or {}).get("mlflow")
    if not settings:
        yield None
        return
    plain = {key: settings[key] for key in settings}
    tags = {"cnnlab.kind": "study", "cnnlab.study": study_name}
    run_id, previous = start_parent(plain, f"study {study_name}", tags, reuse=True)
    try:
        yield run_id
    finally:
        with contextlib.suppress(Exception):  # a store gone at the end loses the parent's status, not the study
            end_parent(plain, run_id, previous)


# --- the report ----------------------------------------------------------------------------------------------------


def tracked_report(tracking_uri: str | None, build: Callable[[], T]) -> T:
    """Build the report (`build`, whose result has a `report_dir`) and, with a tracking URI, log it as an MLflow run of
    its own, its files (checkpoints aside) as artifacts. The URI is checked before anything is built."""
    if not tracking_uri:
        return build()
    check_tracking_uri(tracking_uri, setting="mlflow_tracking_uri")
    result = build()
    client, experiment_id = open_client({"tracking_uri": tracking_uri, "experiment": "cnnlab"})
    run_id = client.create_run(experiment_id, tags={"mlflow.runName": "report", "cnnlab.kind": "report"}).info.run_id
    for path in sorted(Path(result.report_dir).iterdir()):
        if path.is_dir():
            client.log_artifacts(run_id, str(path), artifact_path=path.name)
        elif path.suffix != ".pt":
            client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, status="FINISHED")
    log.info("report logged as MLflow run %s (%s)", run_id, tracking_uri)
    return result
