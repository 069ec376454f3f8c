"""Sweeps through the shipped launcher configs write the same run layout as the default launcher."""

import json

import pytest
from omegaconf import OmegaConf

from cnnlab.runs.layout import run_dir_for
from tests.helpers import TINY, compose_config, invoke, run_command


def sweep(tmp_path, launcher, *args):
    output_dir = f"paths.output_dir={tmp_path / 'outputs'}"
    return run_command(
        "train", "-m", "optimizer=sgd,adam", f"launcher={launcher}", *TINY, output_dir, *args, timeout=300
    )


def finished_runs(make_cfg):
    """metrics.json of the two jobs, read from where the default launcher would have put them."""
    return {
        name: json.loads((run_dir_for(make_cfg(f"optimizer={name}", *TINY)) / "metrics.json").read_text())
        for name in ("sgd", "adam")
    }


@pytest.mark.slow
def test_joblib_sweep_runs_jobs_in_parallel_processes_with_one_thread(tmp_path, make_cfg):
    proc = sweep(tmp_path, "joblib", "hydra.launcher.n_jobs=2")
    assert proc.returncode == 0, proc.stderr
    assert "Joblib.Parallel(n_jobs=2" in proc.stderr + proc.stdout
    runs = finished_runs(make_cfg)
    assert all(m["status"] == "finished" and m["threads"] == 1 for m in runs.values())
    assert runs["sgd"]["config"]["trainer"]["num_threads"] == 1


@pytest.mark.slow
def test_submitit_local_sweep_writes_the_same_layout(tmp_path, make_cfg):
    proc = sweep(tmp_path, "submitit_local", "hydra.launcher.cpus_per_task=1")
    assert proc.returncode == 0, proc.stderr
    runs = finished_runs(make_cfg)
    assert all(m["status"] == "finished" and m["threads"] == 1 for m in runs.values())
    assert list(tmp_path.glob("outputs/logs/train/multiruns/*/.submitit/*"))  # submitit's own per-job folders


def test_bad_setting_of_a_joblib_sweep_is_one_line_and_exit_2_before_any_worker_starts(tmp_path, capsys):
    """In this process: the command line is refused before Hydra starts the sweep, so no worker could have started."""
    out = tmp_path / "outputs"
    args = ("-m", "optimizer=sgd,adam", "launcher=joblib", "hydra.launcher.n_jobs=2", *TINY, "trainer.epochs=0")
    status, stderr = invoke("train", *args, f"paths.output_dir={out}")
    assert status == 2 and stderr == "cnnlab-train: error: trainer.epochs=0 must be a positive integer\n"
    assert "Joblib.Parallel" not in capsys.readouterr().out
    assert not out.exists()  # checked before Hydra writes its log folder


def test_slurm_launcher_composes_with_overridable_resources():
    overrides = [
        "launcher=submitit_slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.gpus_per_node=1",
        "hydra.launcher.cpus_per_task=4",
        "hydra.launcher.mem_gb=8",
        "hydra.launcher.timeout_min=20",
    ]
    cfg = compose_config("train", *overrides, return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (
        launcher.partition,
        launcher.gpus_per_node,
        launcher.cpus_per_task,
        launcher.mem_gb,
        launcher.timeout_min,
    ) == ("gpu", 1, 4, 8, 20)
    assert OmegaConf.to_container(cfg.trainer)["num_threads"] == "${hydra:launcher.cpus_per_task}"
