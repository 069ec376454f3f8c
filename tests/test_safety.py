"""Checkpoints from elsewhere never run code; bad files, settings and paths give one clear line; divergence is
recorded."""

import json
import os
import re
import sys
from pathlib import Path

import pytest
import torch

from cnnlab.atomic import write_json, write_text
from cnnlab.errors import CheckpointError, ConfigError
from cnnlab.models import SimpleCNN
from cnnlab.runs.checkpoint import load_checkpoint, load_model, save_checkpoint
from cnnlab.runs.layout import LAST, run_dir_for
from cnnlab.training.runner import train
from tests.helpers import TINY, CreatesFile, invoke

MNIST_RAW = Path("data/MNIST/raw").resolve()


def checkpoint_of(model: SimpleCNN, batch_norm: bool) -> dict:
    return {"model": model.state_dict(), "config": {"model": {"name": "simple_cnn", "batch_norm": batch_norm}}}


def test_a_crafted_pickle_is_refused_without_running(tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / "evil.pt"
    torch.save({"model": CreatesFile(marker), "config": {}}, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert message.startswith(f"checkpoint {path} holds objects other than tensors") and "\n" not in message
    assert "(it references io.open)" in message and "weights_only=False" not in message
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the payload is real: the unsafe loader does create the file
    assert marker.exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (lambda good: good[: len(good) // 2], "is truncated or not a torch checkpoint"),
        (lambda good: b"", "is truncated or not a torch checkpoint"),
        (lambda good: b"epoch,train_loss\n1,0.5\n", "is truncated or not a torch checkpoint"),
        (lambda good: (MNIST_RAW / "t10k-labels-idx1-ubyte").read_bytes(), "is truncated or not a torch checkpoint"),
    ],
    ids=["truncated", "empty", "csv", "idx"],
)
def test_broken_or_foreign_files_are_one_clear_error(tmp_path, content, expected):
    good = tmp_path / "good.pt"
    save_checkpoint(good, checkpoint_of(SimpleCNN(), False))
    path = tmp_path / "bad.pt"
    path.write_bytes(content(good.read_bytes()))
    with pytest.raises(CheckpointError, match=f"checkpoint {path} {expected}"):
        load_checkpoint(path)


def test_plain_tensors_without_a_config_are_not_a_cnnlab_checkpoint(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(SimpleCNN().state_dict(), path)
    with pytest.raises(CheckpointError, match=f"checkpoint {path} is not a cnnlab checkpoint"):
        load_checkpoint(path)


def test_the_stored_config_builds_the_right_architecture_and_a_mismatch_names_the_file(tmp_path):
    bn = SimpleCNN(batch_norm=True)
    right = save_checkpoint(tmp_path / "bn.pt", checkpoint_of(bn, True))
    model, _ = load_model(right)
    assert model.batch_norm and torch.equal(
        model.state_dict()["fc_block.1.weight"], bn.state_dict()["fc_block.1.weight"]
    )
    wrong = save_checkpoint(tmp_path / "mislabelled.pt", checkpoint_of(bn, False))  # BN weights, config says no BN
    # the first keys it lacks and adds are named, not just "Error(s) in loading state_dict"
    needle = f"checkpoint {wrong} does not fit this SimpleCNN: missing conv_block.3.weight, conv_block.3.bias"
    with pytest.raises(CheckpointError, match=re.escape(needle) + ".*; unexpected conv_block.1.weight"):
        load_model(wrong)


@pytest.mark.slow
def test_resume_refuses_a_last_checkpoint_of_another_configuration(make_cfg):
    bn_dir = train(make_cfg(*TINY, "model.batch_norm=true")).run_dir
    plain = make_cfg(*TINY)
    state = {**load_checkpoint(bn_dir / "checkpoint.pt")}
    run_dir = run_dir_for(plain)
    save_checkpoint(run_dir / LAST, state)
    with pytest.raises(CheckpointError, match=f"{run_dir / LAST} was written by a different configuration"):
        train(plain)
    # the same BN weights under a copied config that claims this run's settings: the weights do not fit
    save_checkpoint(run_dir / LAST, {**state, "config": state["config"] | {"model": dict(plain.model)}})
    with pytest.raises(CheckpointError, match=f"checkpoint {run_dir / LAST} does not fit this SimpleCNN"):
        train(plain)
    assert (run_dir / LAST).exists()  # a refused checkpoint is never deleted


def test_a_huge_learning_rate_stops_the_run_as_diverged(make_cfg):
    result = train(make_cfg(*TINY, "trainer.epochs=3", "optimizer.lr=10"))
    assert result.status == "diverged"
    raw = (result.run_dir / "metrics.json").read_text()
    metrics = json.loads(raw, parse_constant=lambda name: pytest.fail(f"metrics.json holds {name}: not strict JSON"))
    assert metrics["status"] == "diverged" and metrics["diverged_at_epoch"] == 1 and len(metrics["history"]) == 1
    assert "exceeds 230" in metrics["diverged_because"] and "test" not in metrics
    assert (result.run_dir / "history.csv").read_text().count("\n") == 2
    assert not (result.run_dir / "checkpoint.pt").exists()
    again = train(make_cfg(*TINY, "trainer.epochs=3", "optimizer.lr=10"))
    assert again.reused and again.status == "diverged"  # deterministic: not retried on a re-run


def test_json_writes_nan_as_null_and_text_replaces_the_file(tmp_path):
    path = tmp_path / "metrics.json"
    write_json(path, {"loss": float("nan")})
    assert path.read_text() == '{\n  "loss": null\n}\n'
    write_text(path, "done")
    assert path.read_text() == "done"


# ---- the command line: every entry point answers bad input with one line and a non-zero exit ----


def mnist_copy(root: Path, broken: str, content: bytes | None) -> Path:
    """MNIST under `root` with one file replaced (None: removed); the intact ones are symlinks, not copies."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in MNIST_RAW.glob("*-ubyte"):
        if f.name != broken:
            (raw / f.name).symlink_to(f)
        elif content is not None:
            (raw / f.name).write_bytes(content)
    return raw


@pytest.mark.parametrize(
    ("broken", "content", "needles"),
    [
        ("train-labels-idx1-ubyte", b"", ["{raw}/train-labels-idx1-ubyte has SHA-256"]),
        (
            "t10k-images-idx3-ubyte",
            None,
            ["files missing from {raw}: t10k-images-idx3-ubyte", "cnnlab-data data=mnist"],
        ),
    ],
    ids=["empty", "missing"],
)
def test_cnnlab_data_names_an_empty_or_missing_idx_file(tmp_path, monkeypatch, broken, content, needles):
    """Without npm on PATH nothing can be fetched, so a missing file is reported with where to put it (through the
    command's real entry point, in this process)."""
    raw = mnist_copy(tmp_path, broken, content)
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable))
    status, stderr = invoke("data", f"data.root={tmp_path}", "data.download=false")
    assert status == 2 and stderr.startswith("cnnlab-data: error: ") and stderr.count("\n") == 1, stderr
    assert all(needle.format(raw=raw) in stderr for needle in needles), stderr


@pytest.mark.parametrize("sweep", [[], ["-m"]], ids=["run", "sweep"])
def test_train_read_only_output_dir(sweep):
    """Through the command's real entry point, in this process (test_bad_inputs.py runs one per command in its own)."""
    status, stderr = invoke("train", *sweep, "debug=smoke", "paths.output_dir=/sys/cnnlab-out")
    folder = "multiruns" if sweep else "runs"
    needle = f"cannot create the log folder /sys/cnnlab-out/logs/train/{folder} ("
    assert status == 2 and stderr.startswith("cnnlab-train: error: ") and stderr.count("\n") == 1, stderr
    assert needle in stderr


@pytest.mark.parametrize(
    ("override", "error", "needle"),
    [
        ("paths.runs_dir=/sys/cnnlab-runs", CheckpointError, "cannot create run directory /sys/cnnlab-runs/mnist/"),
        ("data.val_size=0", ConfigError, "data.val_size=0 must be between 1 and 59999"),
        ("model.batch_norm=maybe", ConfigError, "model.batch_norm='maybe' must be true or false"),
        ("logger.name=wandb", ConfigError, "logger.name='wandb' is not allowed; choose one of: tensorboard"),
    ],
)
def test_train_bad_paths_and_settings_write_nothing(make_cfg, tmp_path, override, error, needle):
    with pytest.raises(error, match=re.escape(needle)):
        train(make_cfg(*TINY, "logger=tensorboard", override))
    assert not list((tmp_path / "outputs").glob("runs/**/*.*"))
