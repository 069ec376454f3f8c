"""Shared fixtures: configs composed with Hydra's compose API against tmp_path, and idx-file writers."""

from __future__ import annotations

import gzip
import hashlib
import struct
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from cnnlab.config import CONF_DIR, project_root

REPO = project_root()
MNIST_ROOT = REPO / "data"


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose a primary config with outputs redirected into tmp_path (data stays in the repo's data/)."""

    def _make(*overrides: str, config_name: str = "train") -> DictConfig:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(config_name, overrides=[f"paths.output_dir={tmp_path / 'outputs'}", *overrides])

    return _make


@pytest.fixture(scope="session")
def first_sgd_replay(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    """A real `cnnlab-replay epochs=1 runs=1` (the notebook's first SGD epoch on the MNIST files, about a minute),
    shared by the replay's own test and the report's replay column: the process and its output directory."""
    out = tmp_path_factory.mktemp("replayed")
    args = ["epochs=1", "runs=1", "num_threads=1", "progress=false", f"paths.output_dir={out}"]
    return subprocess.run([sys.executable, "-m", "cnnlab.cli.replay", *args], capture_output=True, text=True), out


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> str:
    """Write a uint8 array in idx format (magic 0x0000080N, big-endian dims); returns the SHA-256 of the bytes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    blob = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    (gzip.open if compress else open)(path, "wb").write(blob)
    return hashlib.sha256(blob).hexdigest()


def write_fake_dataset(
    raw: Path, n_train: int = 60, n_test: int = 20, seed: int = 0, names: Sequence[str] = ()
) -> dict[str, str]:
    """Small random images and labels under MNIST's file names; returns name -> digest."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(n_test) % 10,
    }
    return {name: write_idx(raw / name, arr) for name, arr in arrays.items() if not names or name in names}
