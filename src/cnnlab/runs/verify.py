"""Re-train a finished run from what its directory records and compare: is the result reproducible here?

The run directory's metrics.json holds the resolved config (seed included), the thread count, the device and the
versions it ran with; the data files are checked against the SHA-256 digests this cnnlab version knows. The run is
trained again in a temporary folder with the same settings, then its weights (checkpoint.pt: model and optimizer
state) are compared bit for bit and its recorded metrics value for value (timings aside). On the same machine and
versions the two must be identical; where the device or a version differs the verdict says so and gives the largest
metric difference, since bit-identity across them is not expected.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

import cnnlab
from cnnlab.data import ensure_files, get_spec
from cnnlab.errors import CnnlabError, ConfigError
from cnnlab.runs.checkpoint import load_checkpoint
from cnnlab.runs.layout import CHECKPOINT
from cnnlab.runs.record import TIMINGS
from cnnlab.runs.status import RunStatus, read_metrics

# what metrics.json records about how long things took or where they are, which a second run never repeats
UNCOMPARED = {"started_at", "finished_at", "train_time_s", "run_dir", "config"} | TIMINGS
# the checkpoint parts that are the trained state (the rest repeats the config and history already compared)
STATE_KEYS = ("model", "optimizer", "rng")


class Verdict(str, Enum):
    """How the re-trained run compares with the recorded one."""

    IDENTICAL = "identical"
    MISMATCH = "mismatch"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Verification:
    """The outcome: the verdict, every difference found, how the environment differs, and the largest metric gap."""

    verdict: Verdict
    differences: list[str]
    environment: list[str]
    largest_metric_difference: tuple[str, float] | None


def _finished_run(run_dir: Path) -> dict[str, Any]:
    """The run's metrics.json, refused (one line) unless it is a finished cnnlab run this version can re-train."""
    metrics = read_metrics(run_dir)
    if not run_dir.is_dir() or not metrics:
        raise ConfigError(f"{run_dir} is not a run directory (no metrics.json)")
    if metrics.get("status") != RunStatus.FINISHED or not (run_dir / CHECKPOINT).is_file():
        raise ConfigError(f"{run_dir} is not a finished run (status {metrics.get('status', 'unknown')})")
    if "config" not in metrics or "versions" not in metrics:
        raise ConfigError(f"{run_dir}/metrics.json does not record the config and versions a re-run needs")
    recorded = str(metrics["versions"].get("cnnlab", "unknown"))
    if recorded.split(".")[:2] != cnnlab.__version__.split(".")[:2]:
        raise ConfigError(
            f"{run_dir} was written by cnnlab {recorded}; this is cnnlab {cnnlab.__version__} (a re-run needs the "
            f"same major.minor version)"
        )
    return metrics


def _rerun_config(metrics: Mapping[str, Any], work: Path, data_root: Path | None) -> Any:
    """The recorded config with every output under `work`, the recorded thread count, no progress bars and no
    figures (the re-trained run is compared by its numbers, then deleted)."""
    plain = dict(metrics["config"])
    plain["paths"] = {key: str(work / key) for key in plain.get("paths", {})}
    plain["paths"]["runs_dir"] = str(work / "runs")
    plain["data"] = {**plain["data"], "download": False, **({"root": str(data_root)} if data_root else {})}
    plain["trainer"] = {**plain["trainer"], "progress": False, "figures": False, "num_threads": metrics.get("threads")}
    plain["overwrite"] = False
    return OmegaConf.create(plain)


def _check_data(cfg: Any) -> None:
    try:
        ensure_files(get_spec(cfg.data.name), cfg.data.root, download=False)
    except CnnlabError as err:
        raise ConfigError(f"the run's data no longer matches what it was trained on: {err}") from None


def _leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every leaf of nested dicts and lists, with a dotted name."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _leaves(item, f"{prefix}{key}.")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _leaves(item, f"{prefix}{i}.")
    else:
        yield prefix.rstrip("."), value


def _differing(before: Mapping[str, Any], after: Mapping[str, Any]) -> Iterator[tuple[str, Any, Any]]:
    """The names in either mapping whose values differ (tensors bit for bit), sorted, with both values."""
    for name in sorted(before.keys() | after.keys()):
        a, b = before.get(name), after.get(name)
        if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
            differ = a.shape != b.shape or a.dtype != b.dtype or not torch.equal(a, b)
        else:
            differ = a != b
        if differ:
            yield name, a, b


def _compare_state(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The checkpoint tensors (weights, optimizer state, data-order RNG) that are not bit-identical."""
    before, after = ({key: state.get(key) for key in STATE_KEYS} for state in (old, new))
    differences = []
    for name, a, b in _differing(dict(_leaves(before)), dict(_leaves(after))):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            differences.append(f"{name}: {a!r} -> {b!r}")
        elif a.shape != b.shape or a.dtype != b.dtype:
            differences.append(f"{name}: shape/dtype {tuple(a.shape)} {a.dtype} -> {tuple(b.shape)} {b.dtype}")
        else:
            gap = (a.double() - b.double()).abs().max().item() if a.is_floating_point() else float("nan")
            differences.append(f"{name}: not bit-identical (largest difference {gap:.3g})")
    return differences


def _compare_metrics(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[list[str], tuple[str, float] | None]:
    """The recorded metrics that differ (timings and the environment aside), and the largest numeric difference."""
    skip = UNCOMPARED | {"device", "threads", "versions"}
    kept = lambda metrics: {  # noqa: E731
        name: value
        for name, value in _leaves({k: v for k, v in metrics.items() if k not in skip})
        if name.rsplit(".", 1)[-1] not in skip
    }
    differences, largest = [], None
    for name, a, b in _differing(kept(old), kept(new)):
        differences.append(f"metrics {name}: {a!r} -> {b!r}")
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b))
        if numbers and (largest is None or abs(a - b) > largest[1]):
            largest = (name, abs(a - b))
    return differences, largest


def _environment(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """How the device, thread count or versions of the re-run differ from the recorded run's."""
    before, after = ({key: run.get(key) for key in ("device", "threads")} for run in (old, new))
    changes = [f"{key}: {a} -> {b}" for key, a, b in _differing(before, after)]
    versions = _differing(old.get("versions", {}), new.get("versions", {}))
    return changes + [f"{name} {a} -> {b}" for name, a, b in versions]


def verify_run(
    run_dir: str | Path, *, data_root: str | Path | None = None, work_dir: str | Path | None = None
) -> Verification:
    """Re-train the finished run in `run_dir` in a temporary folder (under `work_dir`, else the system's) and compare.

    `data_root` replaces the recorded data folder (the data moved; its files are still checked against the digests).
    Bad input (not a finished run, data that no longer matches, another cnnlab version) is a ConfigError."""
    from cnnlab.training.runner import train  # imported on use: training itself records through cnnlab.runs

    run_dir = Path(run_dir)
    recorded = _finished_run(run_dir)
    with tempfile.TemporaryDirectory(prefix="cnnlab-verify-", dir=work_dir) as tmp:
        cfg = _rerun_config(recorded, Path(tmp), Path(data_root) if data_root else None)
        _check_data(cfg)
        result = train(cfg)
        rerun = read_metrics(result.run_dir)
        state_differences = _compare_state(
            load_checkpoint(run_dir / CHECKPOINT), load_checkpoint(result.run_dir / CHECKPOINT)
        )
    metric_differences, largest = _compare_metrics(recorded, rerun)
    differences = state_differences + metric_differences
    return Verification(
        verdict=Verdict.MISMATCH if differences else Verdict.IDENTICAL,
        differences=differences,
        environment=_environment(recorded, rerun),
        largest_metric_difference=largest,
    )
