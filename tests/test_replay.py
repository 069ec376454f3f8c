"""cnnlab-replay: the notebook's random stream replayed on the real MNIST files, the comparison, and bad input."""

import csv
import json

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from cnnlab.errors import CheckpointError, ConfigError
from cnnlab.models import SimpleCNN
from cnnlab.replay import load_replay
from cnnlab.replay.notebook import training_mode_pass
from cnnlab.replay.published import NOTEBOOK_RUNS
from cnnlab.replay.results import compare_run, summary_path
from cnnlab.replay.runner import replay
from cnnlab.runs.checkpoint import load_checkpoint
from tests.helpers import BN_SECTION, command_argv, invoke, replay_column, replay_report, table


@pytest.mark.slow
def test_first_sgd_epoch_replays_the_published_numbers(first_sgd_replay, capsys):
    proc, out = first_sgd_replay
    assert proc.returncode == 0, proc.stderr

    summary = load_replay(out / "replay", epochs=1)
    sgd = summary["runs"]["sgd"]
    first = sgd["epochs"][0]
    assert abs(first["train_loss"] - 2.2845) <= 0.0005
    assert abs(first["val_loss"] - 2.2662) <= 0.0005
    assert abs(first["val_accuracy"] - 46.46) <= 0.1
    assert sgd["within_tolerance"] is True
    assert sgd["test_accuracy"] == pytest.approx(sgd["test_accuracy_eval_mode"], abs=0.02)  # no batch norm: same
    assert "SGD" in proc.stdout and "2.2845" in proc.stdout and "46.46" in proc.stdout

    run_dir = out / "replay" / sgd["run_dir"].split("/replay/", 1)[1]
    assert run_dir.parent.parent.parent.name == "mnist" and not (out / "runs").exists()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["summary"]["protocol"] == "notebook"
    assert metrics["history"][0]["train_loss"] == first["train_loss"]
    assert metrics["test"]["accuracy"] == sgd["test_accuracy"]
    checkpoint = load_checkpoint(run_dir / "checkpoint.pt")
    assert checkpoint["config"]["protocol"] == "notebook" and checkpoint["epoch"] == 1
    loaded = SimpleCNN().load_state_dict(checkpoint["model"])
    assert loaded.missing_keys == [] and loaded.unexpected_keys == []
    for name in ("history.csv", "classification_report.txt", "confusion_matrix.csv", "curves.png", "predictions.png"):
        assert (run_dir / name).is_file(), name

    # the same command: printed again, not retrained
    capsys.readouterr()
    status, stderr = invoke("replay", *proc.args[len(command_argv("replay")) :])  # in this process
    again, table = capsys.readouterr().out, proc.stdout[proc.stdout.index("notebook replay, ") :]
    assert status is None and again.endswith(table) and "already holds these runs" in again, stderr
    assert json.loads((run_dir / "metrics.json").read_text())["finished_at"] == metrics["finished_at"]


def test_training_mode_evaluation_moves_batch_norm_statistics_and_eval_mode_does_not():
    torch.manual_seed(0)
    model = SimpleCNN(batch_norm=True)
    loader = DataLoader(TensorDataset(torch.rand(40, 1, 28, 28), torch.arange(40) % 10), batch_size=16)
    before = model.conv_block[1].running_mean.clone()
    result = training_mode_pass(model, loader, torch.device("cpu"))
    assert not torch.equal(model.conv_block[1].running_mean, before)
    assert len(result.predictions) == 40 and 0 <= result.accuracy <= 100
    model.eval()
    moved = model.conv_block[1].running_mean.clone()
    with torch.no_grad():
        model(torch.rand(4, 1, 28, 28))
    assert torch.equal(model.conv_block[1].running_mean, moved)


def published_history(run, shift=0.0):
    return [
        {"epoch": i + 1, "train_loss": t + shift, "val_loss": v, "val_accuracy": a}
        for i, (t, v, a) in enumerate(run.epochs)
    ]


def test_comparison_holds_per_epoch_values_for_plain_optimizers_and_test_for_all():
    sgd, adam = NOTEBOOK_RUNS[0], NOTEBOOK_RUNS[3]
    assert compare_run(sgd, published_history(sgd), 81.11, 81.0)["within_tolerance"] is True
    assert compare_run(sgd, published_history(sgd, shift=0.001), 81.11, 81.0)["within_tolerance"] is False
    assert compare_run(sgd, published_history(sgd), 81.20, 81.0)["within_tolerance"] is False
    assert compare_run(adam, published_history(adam, shift=0.01), 99.03 - 0.25, 99.0)["within_tolerance"] is True
    assert compare_run(adam, published_history(adam), 99.03 - 0.35, 99.0)["within_tolerance"] is False
    partial = compare_run(sgd, published_history(sgd)[:2], 60.0, 60.0)
    assert partial["published_test_accuracy"] is None and partial["within_tolerance"] is True
    assert partial["epochs"][1]["published_val_accuracy"] == 61.65


def test_no_replay_reads_as_none_and_a_corrupt_one_is_an_error(tmp_path):
    assert load_replay(tmp_path) is None
    (tmp_path / "replay-e5.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="replay-e5.json"):
        load_replay(tmp_path)


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("epochs=0", "epochs=0 must be a positive integer"),
        ("runs=7", "runs=7 must be between 1 and 6"),
        ("runs=0", "runs=0 must be a positive integer"),
        ("num_threads=-1", "num_threads=-1 must be a positive integer"),
        ("device=tpu", "device='tpu' is not allowed"),
    ],
)
def test_bad_settings_are_rejected_before_anything_is_written(make_cfg, tmp_path, override, needle):
    with pytest.raises(ConfigError, match=needle):
        replay(make_cfg(override, config_name="replay"))
    assert not (tmp_path / "outputs" / "replay").exists()


@pytest.mark.slow
def test_the_report_shows_the_replayed_test_accuracy_beside_the_published_one(make_cfg, first_sgd_replay):
    """In this file, beside the replay's own test, so that the shared replay runs once (a file stays on one worker)."""
    replay_dir = first_sgd_replay[1] / "replay"
    sgd = load_replay(replay_dir, epochs=1)["runs"]["sgd"]
    result, text = replay_report(make_cfg, replay_dir, "replay_epochs=1")

    first = table(text, "Table 1")[0]
    assert list(first)[list(first).index("published %") + 1] == "notebook replay %"
    # after 1 epoch there is no published test value to take a difference to
    assert replay_column(text, "Table 1") == {"SGD": f"{sgd['test_accuracy']:.2f}", "Adam": "not replayed"}
    assert replay_column(text, "Table 2") == {
        "SGD": f"{sgd['test_accuracy']:.2f}",
        "SGD + batch norm": "not replayed",
        "Adam": "not replayed",
        "Adam + batch norm": "not replayed",
    }
    assert f"`{summary_path(replay_dir, 1)}`" in text and "1 epoch, cpu, 1 thread" in text
    assert BN_SECTION not in text  # no batch-norm run was replayed
    assert "No notebook replay yet" not in text

    html = result.html.read_text()
    assert "<th>notebook replay %</th>" in html and f"<td>{sgd['test_accuracy']:.2f}</td>" in html
    rows = list(csv.DictReader(result.tables["replay"].open()))
    assert len(rows) == 1 and rows[0]["replay_run"] == "sgd" and rows[0]["report_runs"] == "sgd"
    assert (
        float(rows[0]["test_accuracy"]) == round(sgd["test_accuracy"], 4) and rows[0]["published_test_accuracy"] == ""
    )
    assert float(rows[0]["test_accuracy_eval_mode"]) == round(sgd["test_accuracy_eval_mode"], 4)
