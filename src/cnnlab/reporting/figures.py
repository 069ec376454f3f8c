"""Report figures, rebuilt only when what they show changed, so re-running the report without new runs is quick."""

from __future__ import annotations

import filecmp
import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from cnnlab.atomic import write_figure, write_text, write_with
from cnnlab.reporting.markdown import md_image
from cnnlab.reporting.sections import ReportContext


def _stamp(path: Path) -> Path:
    return path.with_name(f".{path.name}.inputs")


def cached_figure(path: Path, inputs: Any, build: Callable[[], Figure]) -> Path:
    """Write `build()` to `path` unless it already holds a figure of the same `inputs` (plain data, hashed)."""
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()
    stamp = _stamp(path)
    if not (path.is_file() and stamp.is_file() and stamp.read_text() == digest):
        write_figure(path, build())
        write_text(stamp, digest)
    return path


def md_figure(context: ReportContext, name: str, inputs: Any, build: Callable[[], Figure], caption: str) -> list[str]:
    """The Markdown of figure `name` in the report's figures folder, drawn by `build` unless it shows `inputs`."""
    path = cached_figure(context.figures_dir / name, inputs, build)
    return md_image(path.relative_to(context.report_dir), caption)


def copy_if_changed(source: Path, dest: Path) -> Path:
    """Copy a run's own file beside the report (so links stay relative), skipping identical copies."""
    if not (dest.is_file() and filecmp.cmp(source, dest, shallow=False)):
        write_with(dest, lambda tmp: shutil.copyfile(source, tmp))
    return dest
