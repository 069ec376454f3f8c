"""`logger=tensorboard` writes per-epoch scalars, the test result and figures under the run directory."""

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cnnlab.training.runner import train
from tests.helpers import FIGURES, TINY


@pytest.mark.slow
def test_tensorboard_logger_writes_scalars_and_figures(make_cfg):
    result = train(
        make_cfg(*TINY, FIGURES, "trainer.epochs=2", "logger=tensorboard")
    )  # two epochs: steps 1 and 2 are checked
    events = EventAccumulator(str(result.run_dir / "tensorboard"))
    events.Reload()
    tags = events.Tags()
    assert set(tags["scalars"]) == {
        "loss/train",
        "loss/val",
        "accuracy/val",
        "speed/images_per_s",
        "speed/epoch_time_s",
        "accuracy/test",
        "loss/test",
    }
    history = result.metrics["history"]
    for tag, key in (("loss/train", "train_loss"), ("loss/val", "val_loss"), ("accuracy/val", "val_accuracy")):
        logged = events.Scalars(tag)
        assert [e.step for e in logged] == [1, 2]
        assert [e.value for e in logged] == pytest.approx([h[key] for h in history], rel=1e-6)  # stored as float32
    (test,) = events.Scalars("accuracy/test")
    assert test.step == 2 and test.value == pytest.approx(result.metrics["test"]["accuracy"], rel=1e-6)
    assert set(tags["images"]) == {"figures/curves", "figures/confusion_matrix"}
    assert "config/text_summary" in tags["tensors"]


def test_no_logger_by_default(make_cfg):
    # the default run directory holds no tensorboard/ folder: test_train checks its exact file list
    assert make_cfg().get("logger") is None and make_cfg("logger=tensorboard").logger.log_dir == "tensorboard"
