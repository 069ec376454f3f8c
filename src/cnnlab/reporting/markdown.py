"""Markdown building blocks shared by the report's sections."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|")


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(map(_cell, headers)) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(map(_cell, row)) + " |" for row in rows] + [""]


def md_image(path: Path, caption: str) -> list[str]:
    """An image linked relative to the report directory (report.html embeds it)."""
    return [f"![{caption}]({path.as_posix()})", ""]
