"""`logger=mlflow` against the real thing: an `mlflow server` on 127.0.0.1 and the default SQLite store, read back with
`mlflow.MlflowClient`: a sweep and a study as parents with their runs beneath, params, every epoch's metrics exactly
once after a kill and a resume, statuses, and what happens when the store is missing a run or goes away."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402

from cnnlab.bench.runner import run_bench  # noqa: E402
from cnnlab.reporting import build_report  # noqa: E402
from cnnlab.tracking.mlflow import RunTracker, tracked_report  # noqa: E402
from cnnlab.training.runner import train  # noqa: E402
from tests.helpers import (  # noqa: E402
    FIGURES,
    TABLES_ONLY,
    TINY,
    command_argv,
    compose_config,
    invoke,
    run_command,
    sigint_as_at_a_terminal,
)

EPOCH_METRICS = ("train_loss", "val_loss", "val_accuracy", "images_per_s", "epoch_time_s")
SERVER_READY = "Uvicorn running on"  # one worker: printed once the application has started and the port is bound


class Server:
    """A real `mlflow server` on a free port of 127.0.0.1, ready once it announces that its application started."""

    def __init__(self, root: Path):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.uri = f"http://127.0.0.1:{port}"
        argv = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        argv += ["--backend-store-uri", f"sqlite:///{root}/server.db", "--artifacts-destination", str(root / "art")]
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        for line in self.proc.stdout:  # blocks until the server says it serves (or exits)
            if SERVER_READY in line:
                # its request log keeps coming: read it, or a full pipe would stall the server
                threading.Thread(target=self.proc.stdout.read, daemon=True).start()
                return
        raise AssertionError(f"mlflow server exited with {self.proc.wait()} before it served")

    def stop(self) -> None:
        # the server and its worker (the session this test started), killed outright: on SIGTERM it waits about 10 s
        # for the clients' idle keep-alive connections, and nothing it holds is read after the tests
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("mlflow-server"))
    yield running
    running.stop()


@pytest.fixture
def store(tmp_path: Path) -> str:
    """The default SQLite store under this test's output folder (the server's tests name `server`)."""
    return f"sqlite:///{tmp_path}/mlflow/mlflow.db"


def tracking(out: Path, uri: str) -> list[str]:
    """Log to `uri`, in an experiment of this test's own (the module's server is shared)."""
    return ["logger=mlflow", f"logger.mlflow.tracking_uri={uri}", f"logger.mlflow.experiment={out.name}"]


def runs(uri: str, out: Path) -> list:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(out.name)
    return client.search_runs([experiment.experiment_id]) if experiment else []


def kind(all_runs: list, name: str) -> list:
    return [r for r in all_runs if r.data.tags.get("cnnlab.kind") == name]


def children(all_runs: list, parent) -> list:
    return [r for r in all_runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]


def steps(uri: str, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in MlflowClient(uri).get_metric_history(run_id, key))


@pytest.mark.slow
def test_sweep_is_one_parent_with_its_jobs_beneath(tmp_path, server):
    """On the server, with joblib's workers: the jobs are other processes than the sweep's (the basic launcher's
    in-process jobs log through the same code: the study below runs its trials that way)."""
    store = server.uri
    proc = run_command(
        "train",
        "-m",
        *TINY,
        FIGURES,  # logged as artifacts
        "optimizer=sgd,adam",
        "launcher=joblib",
        *tracking(tmp_path, store),
        f"paths.output_dir={tmp_path}",
    )
    assert proc.returncode == 0, proc.stderr
    everything = runs(store, tmp_path)
    (parent,) = kind(everything, "sweep")
    jobs = children(everything, parent)
    assert len(jobs) == 2 and len(everything) == 3 and parent.info.status == "FINISHED"
    assert {j.data.params["optimizer.name"] for j in jobs} == {"sgd", "adam"}
    for job in jobs:
        assert job.info.status == "FINISHED" and job.data.tags["cnnlab.status"] == "finished"
        assert job.data.tags["cnnlab.seed"] == "42" and Path(job.data.tags["cnnlab.run_dir"]).is_dir()
        assert job.data.params["data.subset"] == "256" and "test_accuracy" in job.data.metrics
        assert all(steps(store, job.info.run_id, key) == [1] for key in EPOCH_METRICS)
        files = {a.path for a in MlflowClient(store).list_artifacts(job.info.run_id)}
        assert {"metrics.json", "config.yaml", "classification_report.txt", "confusion_matrix.png"} <= files
        assert "confusion_matrix.csv" in files


@pytest.mark.slow
def test_study_is_one_parent_with_its_trials_beneath(tmp_path, store):
    args = (*TINY, "trainer.epochs=2", "tune.trials=3", "tune.seeds=[]", "tune.pruner.n_startup_trials=1")
    # in this process, as a notebook would run it: the trials log through the process's one tracking process
    status, stderr = invoke(
        "tune", *args, "tune.pruner.n_warmup_steps=0", *tracking(tmp_path, store), f"paths.output_dir={tmp_path}"
    )
    assert status is None, stderr
    everything = runs(store, tmp_path)
    (parent,) = kind(everything, "study")
    trials = children(everything, parent)
    assert len(trials) == 3 == len(everything) - 1 and parent.info.status == "FINISHED"
    for trial in trials:
        status = trial.data.tags["cnnlab.status"]
        assert (status, trial.info.status) in {("trained", "FINISHED"), ("pruned", "KILLED"), ("diverged", "FAILED")}
        assert "optimizer.lr" in trial.data.params
        trained = 2 if status == "trained" else len(steps(store, trial.info.run_id, "val_accuracy"))
        assert steps(store, trial.info.run_id, "val_accuracy") == list(range(1, trained + 1))


@pytest.mark.slow
def test_killed_run_resumes_its_mlflow_run_and_logs_each_epoch_once(tmp_path, store):
    """Killed (SIGKILL) as soon as its first epoch and its MLflow run are reported, wherever the bookkeeping after
    them then is."""
    args = [
        *TINY,
        "trainer.epochs=2",
        "trainer.progress=false",
        *tracking(tmp_path, store),
        f"paths.output_dir={tmp_path}",
    ]
    victim = subprocess.Popen(command_argv("train", *args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = set()
    for line in victim.stdout:  # blocks until the run reports epoch 1 and its MLflow run, in either order
        seen |= {key for key in ("epoch 1/2", "MLflow run") if key in line}
        if len(seen) == 2:
            victim.kill()
            break
    victim.wait()
    victim.stdout.close()
    (run_dir,) = tmp_path.glob("runs/mnist/*/e2-*/seed42")
    recorded = json.loads((run_dir / "mlflow.json").read_text())["run_id"]
    status, stderr = invoke("train", *args)  # the resume, in this process
    assert status is None, stderr
    (run,) = runs(store, tmp_path)
    assert run.info.run_id == recorded and run.info.status == "FINISHED"
    assert all(steps(store, recorded, key) == [1, 2] for key in EPOCH_METRICS)


@pytest.mark.slow
def test_ctrl_c_ends_the_run_and_its_mlflow_run_as_failed(tmp_path, store):
    """Ctrl-C reaches the whole process group, the tracking process too: it leaves the signal to the run, which records
    `failed` and has the tracking process close the MLflow run FAILED."""
    uri = store
    args = [
        *TINY,
        "trainer.epochs=50",
        "trainer.progress=false",
        *tracking(tmp_path, uri),
        f"paths.output_dir={tmp_path}",
    ]
    victim = subprocess.Popen(
        command_argv("train", *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=sigint_as_at_a_terminal,
    )
    for line in victim.stdout:  # blocks until the run reports epoch 1 (its MLflow run exists by then)
        if "epoch 1/50" in line:
            os.killpg(victim.pid, signal.SIGINT)
            break
    output = victim.stdout.read()
    assert victim.wait() != 0, output
    (run,) = runs(uri, tmp_path)
    assert run.info.status == "FAILED" and run.data.tags["cnnlab.status"] == "failed", output


@pytest.mark.slow  # a tracked run starts MLflow's tracking process, a Python subprocess
def test_failed_run_then_missing_recorded_run_then_reuse(tmp_path, store, make_cfg, caplog):
    """A run that fails ends FAILED; when the store no longer has its recorded run, the retry starts a fresh one (one
    line says so); once finished, training it again is a reuse and logs nothing."""
    uri = store
    cfg = make_cfg(*TINY, "trainer.epochs=2", *tracking(tmp_path, uri))

    def crash(entry):
        raise RuntimeError("stop here")

    with pytest.raises(RuntimeError):
        train(cfg, on_epoch=crash)
    (failed,) = runs(uri, tmp_path)
    assert failed.info.status == "FAILED" and failed.data.tags["cnnlab.status"] == "failed"
    MlflowClient(uri).delete_run(failed.info.run_id)
    with caplog.at_level(logging.WARNING, logger="cnnlab"):
        train(cfg)
    lines = [r.getMessage() for r in caplog.records if "is not in" in r.getMessage()]
    assert len(lines) == 1 and failed.info.run_id in lines[0]
    (fresh,) = runs(uri, tmp_path)
    assert fresh.info.run_id != failed.info.run_id and fresh.info.status == "FINISHED"
    assert steps(uri, fresh.info.run_id, "train_loss") == [1, 2]
    assert train(cfg).reused
    (again,) = runs(uri, tmp_path)
    assert again.info.run_id == fresh.info.run_id and again.info.end_time == fresh.info.end_time


@pytest.mark.slow  # a tracked run starts MLflow's tracking process, a Python subprocess
def test_diverged_run_ends_failed(tmp_path, store, make_cfg):
    uri = store
    result = train(make_cfg(*TINY, "optimizer=sgd", "optimizer.lr=1e6", *tracking(tmp_path, uri)))
    assert result.status == "diverged"
    (run,) = runs(uri, tmp_path)
    assert run.info.status == "FAILED" and run.data.tags["cnnlab.status"] == "diverged"


@pytest.mark.slow
def test_server_gone_mid_run_the_run_finishes_untracked(tmp_path, make_cfg, caplog):
    own = Server(tmp_path / "server")  # its own server: this test stops it
    cfg = make_cfg(*TINY, "trainer.epochs=2", *tracking(tmp_path, own.uri))

    def stop_server(entry):
        if entry["epoch"] == 1:
            own.stop()
        return False

    with caplog.at_level(logging.WARNING, logger="cnnlab"):
        result = train(cfg, on_epoch=stop_server)
    assert result.status == "finished" and (result.run_dir / "checkpoint.pt").exists()
    assert len([r for r in caplog.records if "tracking stopped" in r.getMessage()]) == 1


def test_a_tracker_whose_training_process_is_gone_once_the_store_is_open_starts_no_run(tmp_path):
    """A run killed while its tracking process opened the store: no MLflow run, no mlflow.json, for its resume."""
    uri, run_dir = f"sqlite:///{tmp_path}/mlflow/mlflow.db", tmp_path / "run"
    run_dir.mkdir()
    RunTracker({"tracking_uri": uri, "experiment": "cnnlab"}, run_dir, {"seed": 0}, None, wanted=lambda: False)
    client = MlflowClient(uri)
    assert client.search_runs([client.get_experiment_by_name("cnnlab").experiment_id]) == []
    assert not (run_dir / "mlflow.json").exists()


def test_report_is_a_run_of_its_own_with_its_files(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    cfg = compose_config("report", *TABLES_ONLY, f"mlflow_tracking_uri={uri}", output_dir=tmp_path)
    result = tracked_report(cfg.mlflow_tracking_uri, lambda: build_report(cfg))
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("cnnlab").experiment_id])
    assert run.data.tags["cnnlab.kind"] == "report" and run.info.status == "FINISHED"
    assert {"REPORT.md", "report.html"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    assert result.markdown.is_file()


@pytest.mark.slow
def test_a_new_store_is_made_aside_and_published_only_when_a_run_starts(tmp_path):
    """The tracking process makes a new store's tables in a temporary folder while the run starts: a bad input leaves
    nothing there or in the output folder (and prints its one line alone); a run publishes the store where its
    settings say and leaves nothing behind."""
    scratch, out = tmp_path / "tmp", tmp_path / "out"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    bad = run_command("train", "logger=mlflow", "trainer.epochs=0", f"paths.output_dir={out}", env=env, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert "trainer.epochs=0 must be a positive integer" in bad.stderr
    assert not out.exists() and not list(scratch.glob("cnnlab-mlflow-*"))  # (torch leaves a cache folder there)
    good = run_command("train", *TINY, "logger=mlflow", f"paths.output_dir={out}", env=env, timeout=120)
    assert good.returncode == 0, good.stderr
    assert not list(scratch.glob("cnnlab-mlflow-*")) and {p.name for p in (out / "mlflow").iterdir()} == {
        "mlflow.db",
        "artifacts",
    }
    (run,) = kind(runs(f"sqlite:///{out}/mlflow/mlflow.db", Path("cnnlab")), "run")
    assert run.info.status == "FINISHED" and steps(
        f"sqlite:///{out}/mlflow/mlflow.db", run.info.run_id, "val_loss"
    ) == [1]


@pytest.mark.slow
def test_a_prepared_store_replaces_no_store_and_leaves_nothing_behind(tmp_path, monkeypatch):
    """Published where no store is; where one appears before the link (another job of a sweep) or the filesystem
    refuses hard links, that store or nothing is there afterwards, and neither the staged copy nor the prepared
    folder is left."""
    from cnnlab.tracking.process import _place_store, _prepare_store

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    uri = f"sqlite:///{tmp_path}/new/mlflow.db"
    prepared = _prepare_store(uri)
    assert prepared is not None and prepared.is_file() and not (tmp_path / "new").exists()
    _place_store(prepared, uri)
    assert not prepared.parent.exists() and [p.name for p in (tmp_path / "new").iterdir()] == ["mlflow.db"]
    assert [e.name for e in MlflowClient(uri).search_experiments()] == ["Default"]  # a store MLflow opens as it is
    assert _prepare_store(uri) is None  # it exists now: nothing to prepare

    link = os.link
    for name, race in (("raced", lambda dst: Path(dst).write_bytes(b"another job's store")), ("no-links", None)):

        def linking(src, dst, race=race):
            if race is None:
                raise PermissionError("hard links not supported")
            race(dst)
            return link(src, dst)

        monkeypatch.setattr(os, "link", linking)
        uri = f"sqlite:///{tmp_path}/{name}/mlflow.db"
        prepared = _prepare_store(uri)
        _place_store(prepared, uri)
        left = {p.name: p.read_bytes() for p in (tmp_path / name).iterdir()}
        assert left == ({"mlflow.db": b"another job's store"} if race else {}) and not prepared.parent.exists()


@pytest.mark.slow
def test_the_bench_times_a_run_without_and_with_tracking_and_both_train_the_same(tmp_path):
    """The bench's function in this process (test_bench.py runs the command): its runs are processes of their own."""
    (tmp_path / "scratch").mkdir()
    run_bench(compose_config("bench", "quick=true", "only=[tracking]", output_dir=tmp_path), tmp_path / "scratch")
    new, existing = json.loads((tmp_path / "bench" / "bench-quick.json").read_text())["comparisons"]
    assert new["name"].endswith("(a new store)") and existing["name"].endswith("(an existing store)")
    # one run without tracking, timed against both: its seconds are the baseline of each
    assert new["details"]["off_s"] == existing["details"]["off_s"] and len(new["details"]["off_s"]) == 1
    for timed in (new, existing):
        # the same weights without and with tracking, and the tracked run's MLflow run FINISHED with every epoch
        assert timed["same_result"] is True and timed["unit"] == "s per run" and timed["higher_is_better"] is False
        assert len(timed["details"]["mlflow_s"]) == 1 and timed["target"] == "overhead <= 5% (speed-up >= 0.952x)"
        paired = timed["details"]["mlflow_s"][0] / timed["details"]["off_s"][0] - 1
        assert timed["details"]["paired_overhead"] == pytest.approx(paired, abs=0.01)
