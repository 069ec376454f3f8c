"""Crash safety as users meet it: `kill -9` mid-epoch, Ctrl-C, re-running a sweep, two processes on one run.

One module fixture trains, in parallel subprocesses, a reference run, a victim that is killed mid-epoch and a short
finished run beside it; each test copies that state and re-runs the command line on it.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path

import pytest
import torch

from cnnlab.errors import CheckpointError
from cnnlab.runs.checkpoint import load_checkpoint
from cnnlab.runs.layout import run_dir_for
from cnnlab.runs.lock import run_lock
from cnnlab.runs.record import TIMINGS
from cnnlab.training.runner import train
from tests.helpers import TINY, command_argv, invoke, run_command, sigint_as_at_a_terminal

# not TINY: 2 epochs, so that a run can be killed during its second; a small validation split keeps each epoch well
# under a second on one thread
RUN = [
    "data.subset=1500",
    "data.val_size=500",
    "data.eval_batch_size=500",
    "trainer.epochs=2",
    "trainer.num_threads=1",
    "trainer.progress=true",  # each epoch's progress bar on the output marks its start
    "optimizer=momentum",
    "trainer.eval_every=0.25",  # three validations during each epoch: a resumed run records the same ones
]
MARK = b"epoch 2:"  # the start of epoch 2's progress bar
pytestmark = pytest.mark.slow  # real subprocess runs: about two minutes on 2 busy cores


def start(out: Path, *args: str, log: Path | None = None) -> subprocess.Popen:
    """`cnnlab-train RUN args` in the background: its output goes to `log`, or without one to a pipe that
    `await_epoch_2` reads."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with log.open("w") if log else contextlib.nullcontext(subprocess.PIPE) as out_file:
        return subprocess.Popen(
            command_argv("train", *RUN, f"paths.output_dir={out}", *args),
            stdout=out_file,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=sigint_as_at_a_terminal,
        )


def the_run_dir(out: Path, epochs: int = 2) -> Path:
    (path,) = out.glob(f"runs/mnist/*/e{epochs}-*/seed42")
    return path


def await_epoch_2(proc: subprocess.Popen, timeout: float = 240) -> None:
    """Block on the run's output until its epoch-2 progress bar appears: epoch 1 is then checkpointed and recorded
    (the engine records an epoch before it starts the next) and epoch 2 is training. A timer kills a run that hangs."""
    seen = b""
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        while MARK not in seen:
            chunk = os.read(proc.stdout.fileno(), 4096)
            assert chunk, f"the run ended (or hung for {timeout:.0f} s) before epoch 2: {seen[-2000:]!r}"
            seen += chunk
    finally:
        timer.cancel()


def stop(proc: subprocess.Popen, sig: signal.Signals) -> int:
    """Send `sig` and return the exit status, reading what the run prints meanwhile so that it never blocks on it."""
    proc.send_signal(sig)
    proc.communicate()
    return proc.returncode


def metrics_of(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "metrics.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}


def without_timings(metrics: dict) -> list[dict]:
    def strip(entry: dict) -> dict:
        return {k: [strip(p) for p in v] if k == "evals" else v for k, v in entry.items() if k not in TIMINGS}

    return [strip(h) for h in metrics["history"]]


def assert_same_result(run_dir: Path, reference: Path) -> None:
    got, want = metrics_of(run_dir), metrics_of(reference)
    assert got["status"] == want["status"] == "finished"
    assert [len(h["evals"]) for h in want["history"]] == [3, 3]  # 24 steps per epoch, every 6
    assert without_timings(got) == without_timings(want) and got["test"] == want["test"]
    a, b = load_checkpoint(run_dir / "checkpoint.pt")["model"], load_checkpoint(reference / "checkpoint.pt")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def crashed(tmp_path_factory):
    """(reference output dir, crashed output dir): the crashed one holds a run killed by SIGKILL during epoch 2
    and a finished 1-epoch run of the same settings."""
    base = tmp_path_factory.mktemp("crash")
    ref, crash = base / "ref", base / "crash"
    reference = start(ref, log=base / "ref.log")
    short = start(crash, "trainer.epochs=1", log=base / "short.log")
    victim = start(crash)
    await_epoch_2(victim)
    assert stop(victim, signal.SIGKILL) == -signal.SIGKILL
    assert reference.wait() == 0 and short.wait() == 0, (base / "ref.log").read_text()[-2000:]
    return ref, crash


def test_kill_9_then_ctrl_c_leave_complete_files_and_resume_to_identical_results(crashed, tmp_path, capsys):
    ref, crash = crashed
    out = tmp_path / "out"
    shutil.copytree(crash, out)
    run_dir = the_run_dir(out)
    # what the kill left: complete files only, the state after epoch 1
    metrics = metrics_of(run_dir)
    assert metrics["status"] == "running" and load_checkpoint(run_dir / "last.pt")["epoch"] == 1
    assert len(metrics["history"]) == 1 and not (run_dir / "checkpoint.pt").exists()
    assert (run_dir / ".lock").exists()  # the killed process could not remove it; the kernel released its flock

    # re-run, and interrupt that too (Ctrl-C raises inside the run): recorded as failed, last.pt kept
    proc = start(out)
    await_epoch_2(proc)
    assert stop(proc, signal.SIGINT) != 0
    failed = metrics_of(run_dir)
    assert failed["status"] == "failed" and "KeyboardInterrupt" in failed["error"]
    assert load_checkpoint(run_dir / "last.pt")["epoch"] == 1

    capsys.readouterr()
    status, stderr = invoke("train", *RUN, f"paths.output_dir={out}")  # the same command again, in this process
    assert status is None, stderr[-2000:]
    assert f"resuming {run_dir} after epoch 1" in capsys.readouterr().out  # its log, on the console
    assert_same_result(run_dir, the_run_dir(ref))
    assert not list(run_dir.glob(".*"))  # no lock or temp file left behind
    assert not (run_dir / "last.pt").exists()


def test_rerun_sweep_skips_finished_runs_and_resumes_unfinished_ones(crashed, tmp_path):
    ref, crash = crashed
    out = tmp_path / "out"
    shutil.copytree(crash, out)
    finished = the_run_dir(out, epochs=1) / "metrics.json"
    before = finished.read_text()
    proc = run_command("train", "-m", *RUN, "trainer.epochs=1,2", f"paths.output_dir={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = proc.stdout + proc.stderr
    assert "is already finished" in log and "resuming" in log
    assert finished.read_text() == before  # untouched, not retrained
    assert_same_result(the_run_dir(out), the_run_dir(ref))
    assert len(list(out.glob("logs/train/multiruns/*/*/.hydra/config.yaml"))) == 2  # Hydra's record of each job


def test_a_second_process_on_the_same_run_is_refused(make_cfg):
    cfg = make_cfg(*TINY)
    run_dir = run_dir_for(cfg)
    run_dir.mkdir(parents=True)
    with run_lock(run_dir):
        assert (run_dir / ".lock").read_text() == f"{os.getpid()}\n"
        with pytest.raises(
            CheckpointError, match=rf"run directory {run_dir} is in use by another cnnlab process \(pid {os.getpid()}\)"
        ):
            train(cfg)
    assert not (run_dir / "metrics.json").exists() and not (run_dir / ".lock").exists()


def test_an_interrupted_overwrite_leaves_nothing_stale_that_looks_current(crashed, tmp_path):
    ref, _ = crashed
    out = tmp_path / "out"
    shutil.copytree(ref, out)
    run_dir = the_run_dir(out)
    old = metrics_of(run_dir)
    assert old["status"] == "finished" and (run_dir / "checkpoint.pt").exists()
    assert (run_dir / "curves.png").exists() and (run_dir / "predictions.png").exists()  # gone below, none stale
    (run_dir / "analysis" / "filters").mkdir(parents=True)  # an analysis of the old weights

    proc = start(out, "overwrite=true")
    await_epoch_2(proc)
    assert stop(proc, signal.SIGKILL) == -signal.SIGKILL

    metrics = metrics_of(run_dir)
    assert metrics["started_at"] != old["started_at"]
    assert metrics["status"] == "running" and len(metrics["history"]) == 1 and "test" not in metrics
    left = sorted(p.name for p in run_dir.iterdir())
    stale = {"checkpoint.pt", "classification_report.txt", "confusion_matrix.csv", "confusion_matrix.png"}
    assert not stale & set(left) and not {"curves.png", "predictions.png", "analysis"} & set(left), left
    assert load_checkpoint(run_dir / "last.pt")["epoch"] == 1

    # an analysis refuses what is not a finished run, in one line
    status, stderr = invoke("filters", f"run={run_dir}")
    assert status == 2 and stderr.count("\n") == 1, stderr
    assert stderr.startswith(f"cnnlab-filters: error: run {run_dir} is not finished (status running)")
