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
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from cnnlab.atomic import write_figure, write_json, write_with
from cnnlab.config import CONF_DIR
from cnnlab.data.files import sha256_of
from cnnlab.errors import ConfigError

SUMMARY = "summary.json"
# keys of an analysis's primary config that say where and how to run it, not what to compute
NOT_OPTIONS = {"run", "checkpoint", "device", "paths", "hydra", "defaults"}


@dataclass(frozen=True)
class AnalysisResult:
    name: str
    out_dir: Path
    figures: list[Path]
    summary: dict[str, Any]


def default_options(name: str) -> dict[str, Any]:
    """The options of `conf/<name>.yaml` with their defaults, config groups (other than paths/hydra) filled in."""
    primary = OmegaConf.to_container(OmegaConf.load(CONF_DIR / f"{name}.yaml"))
    options = {k: v for k, v in primary.items() if k not in NOT_OPTIONS}
    for entry in primary.get("defaults", []):
        if isinstance(entry, dict):
            ((group, choice),) = entry.items()
            if group not in NOT_OPTIONS and (CONF_DIR / group).is_dir():
                options[group] = group_option(group, choice)
    return options


def group_option(group: str, choice: str) -> dict[str, Any]:
    path = CONF_DIR / group / f"{choice}.yaml"
    if not path.is_file():
        allowed = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
        raise ConfigError(f"{group}={choice!r} is unknown; allowed: {', '.join(allowed)}")
    return OmegaConf.to_container(OmegaConf.load(path))  # type: ignore[return-value]


def merge_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults overridden by `options`; a config group may be given by name (`{"adversarial_preset": "report"}`)."""
    merged = default_options(name)
    for key, value in options.items():
        if key in NOT_OPTIONS:
            continue
        if key not in merged:
            raise ConfigError(f"{key} is not an option of {name}; allowed: {', '.join(merged)}")
        if isinstance(merged[key], dict):
            if isinstance(value, str):
                value = group_option(key, value)
            elif isinstance(value, Mapping) and "name" in value:
                value = {**group_option(key, value["name"]), **value}
            else:
                value = {**merged[key], **value}
        merged[key] = value
    return json.loads(json.dumps(merged))  # plain lists and dicts, comparable with a stored summary.json


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
    (out_dir / SUMMARY).unlink(missing_ok=True)
    figures = [write_figure(out_dir / file, fig) for file, fig in outputs.figures.items()]
    for file, arrays in outputs.arrays.items():
        write_arrays(out_dir / file, arrays)
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
    write_json(out_dir / SUMMARY, summary)
    return AnalysisResult(name, out_dir, figures, summary)


def analysis_dir(checkpoint: Path, name: str, setting: str) -> Path:
    """`<run dir>/analysis/<name>/<setting>/`: several settings of one analysis sit side by side."""
    return checkpoint.parent / "analysis" / name / setting


def write_arrays(path: Path, arrays: Mapping[str, Any]) -> Path:
    """The raw numbers behind a figure as one .npz (atomically; np.savez gets a file object so it keeps the name)."""

    def save(tmp: Path) -> None:
        with tmp.open("wb") as fh:
            np.savez(fh, **arrays)

    return write_with(path, save)
