"""cnnlab-verify: a finished run re-trained from its own record is identical on this machine; changed records,
unfinished runs, other versions and data that no longer matches are told apart."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cnnlab.errors import ConfigError
from cnnlab.runs.verify import Verdict, verify_run
from cnnlab.training.runner import train
from tests.helpers import TINY, compose_config, invoke, run_command, write_fake_dataset


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """One tiny finished run (1 epoch, 256 images)."""
    out = tmp_path_factory.mktemp("verify")
    return train(compose_config("train", *TINY, "trainer.progress=false", output_dir=out)).run_dir


def _edited_copy(run_dir: Path, dest: Path, edit) -> Path:
    copy = shutil.copytree(run_dir, dest / "run")
    metrics = json.loads((copy / "metrics.json").read_text())
    edit(metrics)
    (copy / "metrics.json").write_text(json.dumps(metrics))
    return copy


@pytest.mark.slow
def test_a_run_re_trained_here_is_identical(finished, tmp_path):
    outcome = verify_run(finished, work_dir=tmp_path)
    assert (outcome.verdict, outcome.differences, outcome.environment) == (Verdict.IDENTICAL, [], [])
    assert list(tmp_path.iterdir()) == []  # the re-run's folder is removed


@pytest.mark.slow
def test_a_run_recorded_before_a_later_setting_existed_is_re_trained_as_it_was(finished, tmp_path):
    """Settings added later (here trainer.cuda_graph) are missing from older records; the re-run still composes."""
    copy = _edited_copy(finished, tmp_path / "old", lambda m: m["config"]["trainer"].pop("cuda_graph"))
    outcome = verify_run(copy, work_dir=tmp_path)
    assert (outcome.verdict, outcome.differences) == (Verdict.IDENTICAL, [])


@pytest.mark.slow
def test_a_changed_record_is_a_mismatch_exit_1_naming_it(finished, tmp_path):
    copy = _edited_copy(finished, tmp_path, lambda m: m["test"].update(accuracy=m["test"]["accuracy"] + 1.5))
    result = run_command("verify", str(copy))
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines()[0] == "mismatch"
    assert "largest metric difference: test.accuracy 1.5" in result.stdout
    assert "metrics test.accuracy:" in result.stdout


def _unfinished(m):
    m["status"] = "running"


def _other_version(m):
    m["versions"]["cnnlab"] = "9.0.0"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("edit", "needle"),
    [(_unfinished, "is not a finished run"), (_other_version, "was written by cnnlab 9.0.0")],
)
def test_an_unfinished_run_or_another_version_is_refused(finished, tmp_path, edit, needle):
    with pytest.raises(ConfigError, match=needle):
        verify_run(_edited_copy(finished, tmp_path, edit), work_dir=tmp_path)


@pytest.mark.slow
def test_data_that_no_longer_matches_is_refused(finished, tmp_path):
    write_fake_dataset(tmp_path / "data" / "MNIST" / "raw")
    with pytest.raises(ConfigError, match="data no longer matches .* has SHA-256"):
        verify_run(finished, data_root=tmp_path / "data", work_dir=tmp_path)


@pytest.mark.slow
def test_a_folder_that_is_no_run_is_exit_2(tmp_path):
    status, stderr = invoke("verify", str(tmp_path))
    assert (status, stderr) == (2, f"cnnlab-verify: error: {tmp_path} is not a run directory (no metrics.json)\n")
