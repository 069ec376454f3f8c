"""Optional experiment loggers (`logger=tensorboard`, `logger=mlflow`, both: `logger=[tensorboard,mlflow]`); without
one a run holds an empty `Loggers`, so the engine never branches on it.

TensorBoard gets per-epoch scalars (losses, accuracy, images/s, epoch time), the test result, the run's config as
text and the curves/confusion figures, under `<run_dir>/<logger.log_dir>/`. MLflow's settings sit under
`logger.mlflow` (`cnnlab.tracking.mlflow`), so the two configs of the `logger` group merge without clashing.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from omegaconf import OmegaConf

from cnnlab.checks import one_of
from cnnlab.errors import ConfigError

LOGGERS = ("tensorboard",)  # logger.name; MLflow is selected by its own key, logger.mlflow

# history key -> TensorBoard tag; the tags group into "loss", "accuracy" and "speed" sections
EPOCH_SCALARS = {
    "train_loss": "loss/train",
    "val_loss": "loss/val",
    "val_accuracy": "accuracy/val",
    "images_per_s": "speed/images_per_s",
    "epoch_time_s": "speed/epoch_time_s",
}


class Logger(Protocol):
    """What the engine logs to: `TensorBoardLogger` and `cnnlab.tracking.process.MlflowLogger`."""

    def log_epoch(self, record: Mapping[str, Any]) -> None: ...

    def log_test(self, epoch: int, accuracy: float, loss: float, figures: Sequence[Path]) -> None: ...

    def close(self) -> None: ...


class TensorBoardLogger:
    def __init__(self, log_dir: Path, first_epoch: int, config: Mapping[str, Any]):
        from torch.utils.tensorboard import SummaryWriter

        # purge_step hides events a killed attempt wrote for epochs that are now being trained again
        self.writer = SummaryWriter(str(log_dir), purge_step=first_epoch)
        if first_epoch == 1:
            self.writer.add_text("config", f"```yaml\n{OmegaConf.to_yaml(config)}```", 0)

    def log_epoch(self, record: Mapping[str, Any]) -> None:
        for key, tag in EPOCH_SCALARS.items():
            self.writer.add_scalar(tag, record[key], record["epoch"])
        self.writer.flush()  # a crash right after this epoch still shows it

    def log_test(self, epoch: int, accuracy: float, loss: float, figures: Sequence[Path]) -> None:
        import matplotlib.pyplot as plt

        self.writer.add_scalar("accuracy/test", accuracy, epoch)
        self.writer.add_scalar("loss/test", loss, epoch)
        for path in figures:
            self.writer.add_image(f"figures/{path.stem}", plt.imread(path)[..., :3], epoch, dataformats="HWC")

    def close(self) -> None:
        self.writer.close()


def check_logger(cfg: Mapping[str, Any] | None) -> None:
    """Reject an unknown logger, one whose package is missing, or an MLflow store that cannot be reached, before a run
    writes anything."""
    if cfg is None:
        return
    if "name" in cfg or "mlflow" not in cfg:
        one_of("logger.name", cfg.get("name"), LOGGERS)
        if importlib.util.find_spec("tensorboard") is None:
            raise ConfigError("logger=tensorboard needs the tensorboard package: pip install tensorboard")
    if "mlflow" in cfg:
        from cnnlab.tracking.mlflow import check_tracking_uri, require_mlflow

        require_mlflow("logger=mlflow")
        check_tracking_uri(cfg["mlflow"]["tracking_uri"])


class Loggers:
    """The loggers a run writes to, as one: none, one, or several (`logger=[tensorboard,mlflow]`)."""

    def __init__(self, loggers: Sequence[Logger] = ()):
        self.loggers = list(loggers)

    def log_epoch(self, record: Mapping[str, Any]) -> None:
        for logger in self.loggers:
            logger.log_epoch(record)

    def log_test(self, epoch: int, accuracy: float, loss: float, figures: Sequence[Path]) -> None:
        for logger in self.loggers:
            logger.log_test(epoch, accuracy, loss, figures)

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()


def warm_up(cfg: Mapping[str, Any] | None) -> None:
    """Start what a logger needs long to start (MLflow's tracking process), so that it overlaps what this process
    does next; a missing package is left to `check_logger` to report."""
    if cfg is not None and cfg.get("mlflow") and importlib.util.find_spec("mlflow") is not None:
        from cnnlab.tracking.process import tracking_process

        tracking_process(str(cfg["mlflow"]["tracking_uri"]))


def open_logger(cfg: Mapping[str, Any] | None, run_dir: Path, first_epoch: int, config: dict[str, Any]) -> Loggers:
    """The loggers the `logger` config group asks for (none when it is unset); `config` is the run's."""
    cfg = cfg or {}
    loggers: list[Logger] = []
    if cfg.get("name") == "tensorboard":
        log_dir = Path(cfg["log_dir"])
        loggers.append(TensorBoardLogger(log_dir if log_dir.is_absolute() else run_dir / log_dir, first_epoch, config))
    if cfg.get("mlflow"):
        from cnnlab.tracking.process import MlflowLogger

        loggers.append(MlflowLogger(cfg["mlflow"], run_dir, config))
    return Loggers(loggers)
