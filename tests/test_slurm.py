"""launcher=submitit_slurm against a real single-node SLURM cluster (scripts/slurm-local.sh, started by the fixture).

The tests marked `slurm` share the session's cluster (one per pytest-xdist worker that runs any of them) and are kept
small, since every job is a fresh Python process: smoke runs, one CPU per job, so two jobs run side by side on a
2-core machine. The first two tests need no cluster.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra.core.hydra_config import HydraConfig

from cnnlab.cli.entry import check_command_line
from cnnlab.errors import ConfigError
from cnnlab.runs.checkpoint import load_checkpoint
from cnnlab.runs.record import TIMINGS
from cnnlab.training.runner import check_train_settings
from hydra_plugins.cnnlab.slurm_launcher import route_submitit_logs
from tests.slurm_cluster import SlurmCluster, start_slurm_cluster  # noqa: F401 (the slurm_cluster fixture)


def on_cluster(test):
    """A test that submits jobs to the session's cluster, grouped so that pytest-xdist may keep them on one worker."""
    return pytest.mark.slurm(pytest.mark.slow(pytest.mark.xdist_group("slurm")(test)))


SLURM = ("launcher=submitit_slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1")
# the same runs on one thread in this process's own launcher, for reference
BASIC = ("trainer.num_threads=1",)
# how each job's log is announced when the sweep is submitted
JOB_LOG = re.compile(r"#(\d+) \(.*\) -> SLURM job (\S+), log (\S+)\.\{out,err\}")


def runs_of(out: Path) -> dict[str, Path]:
    """Run directories by their path under runs/ (name and hash)."""
    return {str(p.relative_to(out / "runs")): p for p in out.glob("runs/*/*/*/seed*")}


def assert_same_result(run_dir: Path, reference: Path) -> None:
    """Same status, history (timings aside), test results and weights, bit for bit."""
    got, want = (json.loads((d / "metrics.json").read_text()) for d in (run_dir, reference))
    assert got["status"] == want["status"] == "finished"
    assert [{k: v for k, v in h.items() if k not in TIMINGS} for h in got["history"]] == [
        {k: v for k, v in h.items() if k not in TIMINGS} for h in want["history"]
    ]
    assert got["test"] == want["test"]
    a, b = (load_checkpoint(d / "checkpoint.pt")["model"] for d in (run_dir, reference))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def start_reference(cluster: SlurmCluster, out: Path, *args: str) -> subprocess.Popen:
    """The same training with the default launcher, beside the cluster's jobs (one thread); output in <out>.log."""
    cmd = cluster.train_command(*args, *BASIC, f"paths.output_dir={out}")
    with out.with_suffix(".log").open("w") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=cluster.env)


def finish(reference: subprocess.Popen, out: Path) -> None:
    assert reference.wait(timeout=300) == 0, out.with_suffix(".log").read_text()


def test_a_sweep_s_settings_are_checked_with_the_launcher_s_values_before_it_starts():
    base = ("launcher=submitit_slurm", "hydra.launcher.cpus_per_task=3", "optimizer=sgd,adam")
    # trainer.num_threads: ${hydra:launcher.cpus_per_task}, which resolves only with Hydra's node set
    check_command_line("cnnlab-train", "train", base, check_train_settings)
    assert not HydraConfig.initialized()  # each job sets its own

    for bad, message in [
        ("trainer.epochs=0", "trainer.epochs=0 must be a positive integer"),
        ("hydra.launcher.cpus_per_task=0", "trainer.num_threads=0 must be a positive integer"),
    ]:
        with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
            check_command_line("cnnlab-train", "train", [*base, bad], check_train_settings)


def test_submitit_messages_reach_the_process_s_handlers_once(caplog):
    route_submitit_logs()
    submitit_log = logging.getLogger("submitit")
    assert not submitit_log.handlers  # submitit's own stdout and stderr handlers printed each record twice more
    with caplog.at_level(logging.INFO):
        for call in (1, 2, 3):
            submitit_log.warning("Call #%d - Bypassing sacct error in this test, status may be inaccurate.", call)
        submitit_log.info("Requeued job 7_1 in this test")
    assert caplog.messages == [
        "submitit warning: Bypassing sacct error in this test, status may be inaccurate.",
        "submitit: Requeued job 7_1 in this test",
    ]


@on_cluster
def test_report_sweep_on_slurm_matches_the_basic_launcher_and_feeds_the_report(slurm_cluster, tmp_path):
    on_slurm, basic = tmp_path / "slurm", tmp_path / "basic"
    reference = start_reference(slurm_cluster, basic, "experiment=report", "debug=smoke")
    proc = slurm_cluster.train("experiment=report", "debug=smoke", *SLURM, f"paths.output_dir={on_slurm}")
    finish(reference, basic)
    assert proc.returncode == 0, proc.stderr

    runs, want = runs_of(on_slurm), runs_of(basic)
    assert len(runs) == 6 and runs.keys() == want.keys()  # the same run directories, hashes included
    for name, run_dir in runs.items():
        assert_same_result(run_dir, want[name])

    # where each job logs, printed when the array was submitted; each submitit message once, in each log too
    output = proc.stdout + proc.stderr
    logs = {int(n): (job, Path(stem)) for n, job, stem in JOB_LOG.findall(output)}
    assert sorted(logs) == list(range(6))
    for _, stem in logs.values():
        job_log = stem.with_name(stem.name + ".out").read_text()
        assert job_log.count("Job completed successfully") == 1 and "test accuracy" in job_log
    # the local cluster keeps no accounting, so every status poll's sacct fails: one warning for them all
    assert output.count("Bypassing sacct error") == 1
    assert "submitit WARNING" not in output and "UserWarning" not in output

    report = subprocess.run(
        [sys.executable, "-m", "cnnlab.cli.report", f"paths.output_dir={on_slurm}", "train_overrides=[debug\\=smoke]"]
        + ["analyses_enabled=false"],
        capture_output=True,
        text=True,
        env=slurm_cluster.env,
        timeout=120,
    )
    assert report.returncode == 0, report.stderr
    assert "from 6 finished runs of the report's configurations" in (on_slurm / "report" / "REPORT.md").read_text()


@on_cluster
def test_bad_settings_stop_the_slurm_sweep_with_one_line(slurm_cluster, tmp_path):
    def sweep(name: str, *args: str) -> subprocess.Popen:
        cmd = slurm_cluster.train_command("-m", *args, *SLURM, f"paths.output_dir={tmp_path / name}")
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=slurm_cluster.env)

    # side by side: the first two are mostly a Python start-up
    shared = sweep("shared", "optimizer=sgd,adam", "trainer.epochs=0")
    # a value only one job gets is checked too, before anything is submitted
    per_job = sweep("per_job", "data.batch_size=64,-1")
    # a problem only the job itself can find (here a data root that is a file) stops the sweep with the job's line
    not_a_folder = tmp_path / "not_a_folder"
    not_a_folder.write_text("")
    in_job = sweep("in_job", "optimizer=sgd,adam", f"data.root={not_a_folder}")

    for proc, name, expected in (
        (shared, "shared", "cnnlab-train: error: trainer.epochs=0 must be a positive integer"),
        (per_job, "per_job", "cnnlab-train: error: data.batch_size=-1 must be a positive integer"),
    ):
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 2 and "Traceback" not in err and "Warning" not in err
        assert [line for line in err.splitlines() if "error" in line.lower()] == [expected]
        assert not list((tmp_path / name).rglob(".submitit"))  # submitit's folder comes with the first submission

    _, err = in_job.communicate(timeout=120)
    assert in_job.returncode == 2 and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if "error" in line.lower()]
    assert re.fullmatch(rf"cnnlab-train: error: job #\d \(.*\): data.root={not_a_folder} is a file; .*", line), line


@on_cluster
def test_a_preempted_job_requeues_itself_and_resumes_to_bit_identical_weights(slurm_cluster, tmp_path):
    on_slurm, basic = tmp_path / "slurm", tmp_path / "basic"
    run = ("optimizer=sgd", "debug=smoke", "trainer.epochs=3")
    sweep = subprocess.Popen(
        slurm_cluster.train_command("-m", *run, *SLURM, f"paths.output_dir={on_slurm}"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=slurm_cluster.env,
    )
    reference = start_reference(slurm_cluster, basic, *run)

    # once epoch 1 is saved, signal the job as SLURM does at preemption or signal_delay_s before its time limit. The
    # file is polled: the job runs under slurmd, so this process has no pipe, lock or exit of it to wait on
    deadline = time.monotonic() + 120
    while not list(on_slurm.glob("runs/*/*/*/seed42/last.pt")):
        assert sweep.poll() is None and time.monotonic() < deadline, "no epoch finished on the cluster"
        time.sleep(0.1)
    (job_folder,) = on_slurm.glob("logs/train/multiruns/*/.submitit/[0-9]*")
    job_id = job_folder.name
    slurm_cluster.command("scancel", "--signal=USR2", job_id)

    output, _ = sweep.communicate(timeout=180)
    assert sweep.returncode == 0, output
    finish(reference, basic)
    job_log = (job_folder / f"{job_id}_0_log.out").read_text()
    assert "this job is preempted" in job_log and f"Requeued job {job_id}" in job_log
    assert re.search(r"resuming \S+ after epoch [12]\n", job_log)
    assert "Restarts=1 " in slurm_cluster.command("scontrol", "show", "job", job_id)
    ((_, run_dir),), ((_, want),) = runs_of(on_slurm).items(), runs_of(basic).items()
    assert run_dir.relative_to(on_slurm) == want.relative_to(basic)
    assert_same_result(run_dir, want)
