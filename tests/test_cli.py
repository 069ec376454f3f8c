"""The command line as a user runs it: the jobs its experiments sweep, and console scripts in a subprocess (sweeps
with -m run in test_resume.py and test_comparison.py)."""

import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from cnnlab.config import CONF_DIR
from tests.helpers import invoke


def test_report_experiment_sweeps_the_six_report_runs_batch_norm_first():
    files = sorted(p.stem for p in (CONF_DIR / "experiment" / "report").glob("*.yaml"))
    assert files == ["adam", "adam_bn", "momentum", "rmsprop", "sgd", "sgd_bn"]
    sweeper = OmegaConf.load(CONF_DIR / "experiment" / "report.yaml").hydra.sweeper
    swept = sweeper.params["+experiment/report"].split(",")
    assert sorted(swept) == files and swept[:2] == ["adam_bn", "sgd_bn"]


def test_report_experiment_composes_six_distinct_jobs(make_cfg):
    from cnnlab.runs.layout import run_dir_for

    jobs = [
        make_cfg(f"+experiment/report={name}") for name in ("sgd", "momentum", "rmsprop", "adam", "sgd_bn", "adam_bn")
    ]
    combos = [(c.optimizer.name, c.model.batch_norm, c.trainer.epochs, c.optimizer.lr, c.data.batch_size) for c in jobs]
    assert combos == [
        ("sgd", False, 5, 0.001, 64),
        ("momentum", False, 5, 0.001, 64),
        ("rmsprop", False, 5, 0.001, 64),
        ("adam", False, 5, 0.001, 64),
        ("sgd", True, 5, 0.001, 64),
        ("adam", True, 5, 0.001, 64),
    ]
    assert jobs[1].optimizer.momentum == 0.9
    assert len({run_dir_for(c) for c in jobs}) == 6


def test_fetch_verifies_existing_files(capsys):
    status, stderr = invoke("data")  # in this process (scripts/wheel_smoke.sh runs the installed command)
    assert status is None and "4 files verified" in capsys.readouterr().out, stderr


@pytest.mark.slow
def test_console_scripts_find_their_configs_and_summary_prints_the_report_counts(tmp_path):
    """The installed `cnnlab-*` commands (not `python -m`) resolve conf/ from any working directory; the counts
    themselves, with batch norm too, are test_model.py's."""
    bin_dir = __import__("pathlib").Path(sys.executable).parent
    proc = subprocess.run([str(bin_dir / "cnnlab-summary")], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "parameters: 799,078 (conv 9,568, fc 789,510)" in proc.stdout
    assert "neurons:    31,870 (conv 31,360, fc 510)" in proc.stdout
