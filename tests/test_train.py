"""End-to-end training on a real-MNIST subset, composed with Hydra's compose API into tmp_path."""

import json
import os
from pathlib import Path

import pytest
import torch

from cnnlab.errors import CheckpointError, ConfigError, DataError
from cnnlab.models import SimpleCNN
from cnnlab.runs.checkpoint import load_checkpoint, save_checkpoint
from cnnlab.runs.layout import run_dir_for
from cnnlab.runs.record import TIMINGS
from cnnlab.training.runner import train
from tests.helpers import FIGURES, TINY

RUN_FILES = {
    "checkpoint.pt",
    "metrics.json",
    "history.csv",
    "classification_report.txt",
    "confusion_matrix.csv",
    "curves.png",
    "confusion_matrix.png",
    "predictions.png",
    "config.yaml",
}


@pytest.mark.slow
def test_smoke_run_writes_a_complete_run_directory(make_cfg, tmp_path):
    cfg = make_cfg("debug=smoke", "optimizer=momentum", "model.batch_norm=true")
    result = train(cfg)
    run_dir = result.run_dir
    assert run_dir.is_relative_to(tmp_path)
    assert run_dir.relative_to(tmp_path / "outputs" / "runs").parts[:2] == ("mnist", "momentum-bn")
    assert run_dir.name == "seed42"
    assert {p.name for p in run_dir.iterdir()} == RUN_FILES  # last.pt is gone once finished

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "finished"
    assert metrics["params"]["total"] == 800_206 and metrics["neurons"]["total"] == 31_870
    assert len(metrics["history"]) == 1 and metrics["history"][0]["images_per_s"] > 0
    assert 25 < metrics["test"]["accuracy"] <= 100  # chance is 10%; 1 epoch on 2,000 images clears it well
    summary = {"optimizer": "momentum", "batch_norm": True, "subset": 2000, "test_subset": 2000}
    assert metrics["summary"] == {**metrics["summary"], **summary}
    assert set(metrics["versions"]) >= {"torch", "torchvision", "python"}

    history = (run_dir / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,train_loss,val_loss,val_accuracy") and len(history) == 2
    assert "accuracy" in (run_dir / "classification_report.txt").read_text()
    matrix = [line.split(",") for line in (run_dir / "confusion_matrix.csv").read_text().splitlines()[1:]]
    assert sum(int(v) for row in matrix for v in row[1:]) == 2_000  # debug=smoke's test images
    for png in ("curves.png", "confusion_matrix.png", "predictions.png"):
        assert (run_dir / png).read_bytes()[:4] == b"\x89PNG"

    state = load_checkpoint(run_dir / "checkpoint.pt")
    assert state["epoch"] == 1 and state["config"]["optimizer"]["name"] == "momentum"
    model = SimpleCNN(**{k: v for k, v in state["config"]["model"].items() if k != "name"})
    model.load_state_dict(state["model"])
    torch.load(run_dir / "checkpoint.pt", weights_only=True)  # plain data only


@pytest.mark.slow
def test_same_seed_same_metrics_with_or_without_figures_and_other_seed_differs(make_cfg, tmp_path):
    torch.manual_seed(123)  # what ran before must not matter
    first = train(make_cfg(*TINY, FIGURES))
    # trainer.figures=false: the same configuration (its directory), retrained over the first with its numbers only
    again = train(make_cfg(*TINY, "overwrite=true", "trainer.figures=false"))
    assert again.run_dir == first.run_dir and {p.name for p in again.run_dir.iterdir()} == RUN_FILES - {
        "curves.png",
        "confusion_matrix.png",
        "predictions.png",
    }
    a, b = first.metrics, again.metrics
    c = train(make_cfg(*TINY, "seed=7")).metrics
    strip = lambda m: [{k: v for k, v in h.items() if k not in TIMINGS} for h in m["history"]]  # noqa: E731
    assert strip(a) == strip(b) and a["test"] == b["test"]
    assert strip(a) != strip(c)


@pytest.mark.slow
def test_finished_run_is_reused_unless_overwrite(make_cfg):
    first = train(make_cfg(*TINY))
    again = train(make_cfg(*TINY))
    assert again.reused and again.metrics == first.metrics
    # metrics.json is replaced by an atomic rename: a retrained run leaves another file in its place. The old file is
    # kept open, so that its inode number cannot be given to one of the new files the run writes.
    with (first.run_dir / "metrics.json").open() as written:
        redo = train(make_cfg(*TINY, "overwrite=true"))
        assert not redo.reused and (redo.run_dir / "metrics.json").stat().st_ino != os.fstat(written.fileno()).st_ino
        assert json.load(written) == first.metrics  # the old file itself was never written to


def test_different_configs_never_share_a_directory(make_cfg):
    base = make_cfg()
    dirs = {
        run_dir_for(make_cfg(*o))
        for o in [
            (),
            ("optimizer.lr=0.01",),
            ("optimizer.weight_decay=0.1",),
            ("model.batch_norm=true",),
            ("data.split_seed=1",),
            ("trainer.precision=bf16",),
            ("seed=1",),
            ("data.subset=100",),
            ("data.test_subset=100",),
        ]
    }
    assert len(dirs) == 9
    assert run_dir_for(make_cfg("data.subset=100", "data.test_subset=100")).parent.name.startswith(
        "e5-lr0.001-bs64-n100-t100-"
    )
    assert run_dir_for(make_cfg("trainer.progress=false", "trainer.device=cpu")) == run_dir_for(base)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.epochs=0", "trainer.epochs=0 must be a positive integer"),
        ("trainer.epochs=-2", "trainer.epochs=-2 must be a positive integer"),
        ("optimizer.lr=0", "optimizer.lr=0 must be a positive number"),
        ("optimizer.lr=-0.1", "optimizer.lr=-0.1 must be a positive number"),
        ("data.batch_size=0", "data.batch_size=0 must be a positive integer"),
        ("trainer.device=tpu", "trainer.device='tpu' is not allowed; choose one of: auto, cpu, cuda"),
        ("trainer.precision=fp8", "trainer.precision='fp8' is not allowed; choose one of: fp32, bf16"),
        ("data.subset=50001", r"data.subset=50001 must be between 1 and the training split's size \(50000\)"),
    ],
)
def test_bad_settings_are_rejected_before_anything_is_written(make_cfg, tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        train(make_cfg("debug=smoke", override))
    assert not list((tmp_path / "outputs").glob("runs/**/metrics.json"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised on a machine without a GPU")
def test_cuda_without_a_gpu(make_cfg):
    with pytest.raises(ConfigError, match="trainer.device=cuda but no CUDA GPU is available"):
        train(make_cfg("debug=smoke", "trainer.device=cuda"))


def test_data_root_problems(make_cfg, tmp_path):
    (tmp_path / "afile").write_text("")
    with pytest.raises(ConfigError, match="data.root=.*afile is a file"):
        train(make_cfg("debug=smoke", f"data.root={tmp_path / 'afile'}"))
    corrupt = tmp_path / "corrupt" / "MNIST" / "raw"
    corrupt.mkdir(parents=True)
    for f in Path("data/MNIST/raw").glob("*ubyte"):
        (corrupt / f.name).write_bytes(f.read_bytes()[:-1] + b"\x00" if "t10k-labels" in f.name else f.read_bytes())
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte has SHA-256"):
        train(make_cfg("debug=smoke", f"data.root={tmp_path / 'corrupt'}"))


def test_run_directory_that_is_a_file(make_cfg):
    cfg = make_cfg(*TINY)
    target = run_dir_for(cfg)
    target.parent.mkdir(parents=True)
    target.write_text("not a directory")
    with pytest.raises(CheckpointError, match="is a file"):
        train(cfg)


@pytest.mark.slow
def test_a_run_trained_without_its_test_pass_is_finished_later_by_resuming(make_cfg):
    """What a tuning trial leaves: every epoch trained, the test set never read, last.pt kept; a later plain run of
    the same configuration adds only the test pass, and agrees with a run trained straight through."""
    cfg = make_cfg(*TINY, "trainer.epochs=2")
    trained = train(cfg, test=False)
    assert trained.status == "trained" and trained.metrics["status"] == "trained"
    assert "test" not in trained.metrics and not (trained.run_dir / "checkpoint.pt").exists()
    assert not (trained.run_dir / "classification_report.txt").exists()
    assert load_checkpoint(trained.run_dir / "last.pt")["epoch"] == 2

    finished = train(cfg)
    assert finished.status == "finished" and not finished.reused
    assert [h["val_accuracy"] for h in finished.metrics["history"]] == [
        h["val_accuracy"] for h in trained.metrics["history"]
    ]
    straight = train(make_cfg(*TINY, "trainer.epochs=2", "overwrite=true"))
    assert straight.metrics["test"]["accuracy"] == finished.metrics["test"]["accuracy"]


@pytest.mark.slow
def test_an_epoch_hook_can_stop_a_run_as_pruned(make_cfg):
    seen = []

    def prune_after_first(entry):
        seen.append(entry["epoch"])
        return True

    result = train(make_cfg(*TINY, "trainer.epochs=3"), on_epoch=prune_after_first)
    assert seen == [1] and result.status == "pruned"
    assert result.metrics["status"] == "pruned" and len(result.metrics["history"]) == 1
    assert load_checkpoint(result.run_dir / "last.pt")["epoch"] == 1 and "test" not in result.metrics


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["rmsprop", "adam-unfused"])
def test_a_checkpoint_of_a_cuda_graphed_run_resumes_on_the_cpu(make_cfg, optimizer):
    """A CUDA graph needs a capturable optimizer (its step counter on the GPU), and last.pt records that mode; torch
    refuses a capturable step on the CPU, so resuming sets the mode back to what the CPU needs. The resumed run then
    computes what a run trained straight through computes."""
    chosen = ["optimizer=adam", "optimizer.fused=false"] if optimizer == "adam-unfused" else [f"optimizer={optimizer}"]
    cfg = make_cfg(*TINY, "trainer.epochs=2", *chosen)
    pruned = train(cfg, on_epoch=lambda entry: True)
    last = pruned.run_dir / "last.pt"
    state = load_checkpoint(last)
    for group in state["optimizer"]["param_groups"]:
        group["capturable"] = True  # as a run graphed on cuda saves it
    save_checkpoint(last, state)

    resumed = train(cfg)
    assert resumed.status == "finished" and len(resumed.metrics["history"]) == 2
    straight = train(make_cfg(*TINY, "trainer.epochs=2", *chosen, "overwrite=true"))
    assert resumed.metrics["history"][1]["train_loss"] == pytest.approx(straight.metrics["history"][1]["train_loss"])
