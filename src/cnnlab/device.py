"""Pick the torch device a run or analysis uses."""

from __future__ import annotations

import torch

from cnnlab.checks import one_of
from cnnlab.errors import ConfigError


def resolve_device(name: str, setting: str = "trainer.device") -> torch.device:
    """`auto` takes CUDA when present; `cuda` without a GPU is an error rather than a silent CPU run."""
    one_of(setting, name, ("auto", "cpu", "cuda"))
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{setting}=cuda but no CUDA GPU is available; use {setting}=auto or {setting}=cpu")
    return torch.device(name)
