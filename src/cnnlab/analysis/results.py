"""What every analysis shares around its computation: its options, its output folder, and the summary.json cache.

An analysis's `summary.json` is written last and records the checkpoint's SHA-256 and the full settings; a later call
with the same checkpoint and settings returns it without recomputing (`force=true` recomputes).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from matplotlib.figure import Figure
from omegaconf import DictConfig

from cnnlab.analysis.loading import LoadedRun, checkpoint_path, load_run
from cnnlab.atomic import write_figure, write_json, write_with
from cnnlab.config import compose_config, config_group_options, override_value, to_plain
from cnnlab.data.files import sha256_of
from cnnlab.errors import ConfigError
from cnnlab.runs.lock import run_lock
from cnnlab.runs.record import remove_stale_temp_files

SUMMARY = "summary.json"
# keys of an analysis's primary config that say where and how to run it, not what to compute
NOT_OPTIONS = {"run", "checkpoint", "device", "paths", "hydra", "defaults"}
Checked = TypeVar("Checked")  # an analysis's settings after its own checks


@dataclass(frozen=True)
class AnalysisResult:
    name: str
    out_dir: Path
    figures: list[Path]
    summary: dict[str, Any]


def merge_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """`conf/<name>.yaml` composed by Hydra with `options` as overrides, without the keys that say where to run it:
    plain data, comparable with the settings a summary.json stored. A config group is given by name
    (`{"adversarial_preset": "report"}`), by name and changes (`{"name": "report", "iterations": 3}`) or by changes
    to its default option (`{"iterations": 3}`)."""
    return _options_of(compose_config(name, option_overrides(name, options)))


def options_of(name: str, options: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """`merge_options` without `force` (how to run, not a setting: it is not part of the cache key), and `force`."""
    settings = merge_options(name, options)
    return settings, settings.pop("force")


def _options_of(cfg: DictConfig) -> dict[str, Any]:
    return {key: value for key, value in to_plain(cfg).items() if key not in NOT_OPTIONS}


def option_overrides(name: str, options: Mapping[str, Any]) -> list[str]:
    """`options` as the Hydra overrides of `conf/<name>.yaml` (what its command takes), each option checked first so
    an unknown one is named with what is allowed."""
    defaults, choices = _defaults(name)
    overrides = []
    for key, value in options.items():
        if key in NOT_OPTIONS:
            continue
        if key not in defaults:
            raise ConfigError(f"{key} is not an option of {name}; allowed: {', '.join(defaults)}")
        if key in choices:
            overrides += _group_overrides(name, key, value, choices[key])
        elif isinstance(defaults[key], dict) and isinstance(value, Mapping):
            overrides += _changes(key, value)
        else:
            overrides.append(f"{key}={override_value(value)}")
    return overrides


@cache
def _defaults(name: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The default options of `conf/<name>.yaml` and the option it chooses in each of its config groups."""
    options = _options_of(compose_config(name))
    chosen = compose_config(name, return_hydra_config=True).hydra.runtime.choices
    return options, {group: str(choice) for group, choice in chosen.items() if group in options}


@cache
def _group_keys(name: str, group: str, choice: str) -> tuple[str, ...]:
    """The settings of option `choice` of config group `group`, as `conf/<name>.yaml` composes it."""
    return tuple(compose_config(name, [f"{group}={choice}"])[group])


def _group_overrides(name: str, group: str, value: Any, default: str) -> list[str]:
    allowed = config_group_options(group)
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{group}={value!r} must name one of {', '.join(allowed)} or be a mapping of its settings")
    choice = value.get("name", default)
    if choice not in allowed:
        raise ConfigError(f"{group}={choice!r} is unknown; allowed: {', '.join(allowed)}")
    keys = _group_keys(name, group, choice)
    for key in value:
        if key not in keys:
            raise ConfigError(f"{group}.{key} is not a setting of {group}={choice}; allowed: {', '.join(keys)}")
    chosen = [f"{group}={choice}"] if "name" in value else []
    return chosen + _changes(group, {key: v for key, v in value.items() if key != "name"})


def _changes(prefix: str, changes: Mapping[str, Any]) -> list[str]:
    """`prefix.key=value` for every (nested) change: the rest of the mapping keeps its values."""
    overrides = []
    for key, value in changes.items():
        if isinstance(value, Mapping):
            overrides += _changes(f"{prefix}.{key}", value)
        else:
            overrides.append(f"{prefix}.{key}={override_value(value)}")
    return overrides


def analysis(
    name: str,
    check: Callable[[dict[str, Any]], tuple[Checked, str]],
    compute: Callable[[LoadedRun, Checked], Outputs],
) -> Callable[..., AnalysisResult]:
    """Analysis `name` as `fn(run_dir, options, device="auto", data_dir=None)`: it composes its options (`force` is how
    to run, not a setting), `check`s them before anything is read (giving the checked values and the name of their
    folder), then serves the cached result or `compute`s it from the loaded run. Outputs go to
    `<run dir>/analysis/<name>/<setting>/`, so several settings of one analysis sit side by side."""

    def run(
        run_dir: Path, options: Mapping[str, Any], device: str = "auto", data_dir: Path | None = None
    ) -> AnalysisResult:
        settings, force = options_of(name, options)
        checked, setting = check(settings)
        checkpoint = checkpoint_path(run_dir)
        out_dir = checkpoint.parent / "analysis" / name / setting
        return run_cached(
            name, checkpoint, out_dir, settings, force, lambda: compute(load_run(checkpoint, device, data_dir), checked)
        )

    run.__name__ = run.__qualname__ = name
    run.__module__ = compute.__module__  # where it is defined for help() and pickle: the analysis's own module
    run.__doc__ = f"The {name} analysis of `run_dir` (a run directory or a checkpoint) with `options`; see `analysis`."
    return run


def cached(name: str, out_dir: Path, digest: str, settings: Mapping[str, Any]) -> AnalysisResult | None:
    """The stored result when it was computed from this checkpoint with these settings and its files are all there."""
    try:
        summary = json.loads((out_dir / SUMMARY).read_text())
    except (OSError, ValueError):
        return None
    if summary.get("checkpoint_sha256") != digest or summary.get("settings") != settings:
        return None
    files = [out_dir / f for f in summary.get("figures", []) + summary.get("arrays", [])]
    if not all(f.is_file() for f in files):
        return None
    return AnalysisResult(name, out_dir, [out_dir / f for f in summary["figures"]], summary)


@dataclass
class Outputs:
    """What an analysis computed, still in memory: figures by file name, arrays by .npz file name, summary fields."""

    figures: dict[str, Figure]
    arrays: dict[str, dict[str, Any]]
    results: dict[str, Any]


def run_cached(
    name: str, checkpoint: Path, out_dir: Path, settings: Mapping[str, Any], force: bool, compute: Callable[[], Outputs]
) -> AnalysisResult:
    """Return the cached result, or compute and write the files, summary.json last.

    Nothing is touched until `compute()` has succeeded (a bad setting it finds loses nothing), and the old summary
    is removed before the new files are written, so an interrupted write never leaves a folder that looks complete.
    """
    digest = sha256_of(checkpoint)
    if not force and (hit := cached(name, out_dir, digest, settings)) is not None:
        return hit
    start = time.perf_counter()
    outputs = compute()
    seconds = time.perf_counter() - start
    summary = {
        "analysis": name,
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": digest,
        "settings": dict(settings),
        "figures": list(outputs.figures),
        "arrays": list(outputs.arrays),
        "compute_time_s": round(seconds, 3),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **outputs.results,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(out_dir):  # one writer per analysis folder; what a killed one left half-written goes first
        remove_stale_temp_files(out_dir)
        (out_dir / SUMMARY).unlink(missing_ok=True)
        figures = [write_figure(out_dir / file, fig) for file, fig in outputs.figures.items()]
        for file, arrays in outputs.arrays.items():
            write_arrays(out_dir / file, arrays)
        write_json(out_dir / SUMMARY, summary)
    return AnalysisResult(name, out_dir, figures, summary)


def write_arrays(path: Path, arrays: Mapping[str, Any]) -> Path:
    """The raw numbers behind a figure as one .npz (atomically; np.savez gets a file object so it keeps the name)."""

    def save(tmp: Path) -> None:
        with tmp.open("wb") as fh:
            np.savez(fh, **arrays)

    return write_with(path, save)
