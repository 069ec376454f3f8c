"""Load a dataset once into tensors and split it: train/validation from the training file, test from t10k."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from cnnlab.checks import count_of
from cnnlab.data.files import ensure_files
from cnnlab.data.specs import DatasetSpec
from cnnlab.errors import ConfigError, DataError

IDX_UBYTE = b"\x00\x00\x08"  # an idx file's first bytes when its values are unsigned bytes


@dataclass(frozen=True)
class Split:
    """Images as float32 [N, 1, 28, 28] (pixels in [0, 1] unless normalised) and int64 labels [N]."""

    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), self.y.to(device))

    def take(self, index: Tensor | slice) -> Split:
        return Split(self.x[index], self.y[index])


@dataclass(frozen=True)
class Splits:
    train: Split
    val: Split
    test: Split
    spec: DatasetSpec

    @property
    def classes(self) -> tuple[str, ...]:
        return self.spec.classes


def to_float(raw: Split) -> Split:
    """uint8 [N, 28, 28] -> float32 [N, 1, 28, 28] in [0, 1], as ToTensor converts."""
    return Split(raw.x.unsqueeze(1).float().div_(255), raw.y)


def read_idx(path: Path) -> np.ndarray:
    """An idx file of unsigned bytes: two zero bytes, type 0x08, the number of dimensions, each dimension's size as a
    big-endian uint32, then the values. Read here rather than with torchvision's dataset class, which gives the same
    arrays (tests/test_data.py compares them on the real files) but would make every command that reads data import
    all of torchvision (its models and ops) at start-up."""
    blob = bytearray(path.read_bytes())
    if len(blob) < 4 or blob[:3] != IDX_UBYTE:
        raise ValueError(f"{path.name} does not start as an idx file of unsigned bytes")
    ndim, header = blob[3], 4 + 4 * blob[3]
    if len(blob) < header:
        raise ValueError(f"{path.name} ends inside its header")
    shape = struct.unpack(f">{ndim}I", blob[4:header])
    values = np.frombuffer(blob, dtype=np.uint8, offset=header)
    if values.size != math.prod(shape):
        raise ValueError(f"{path.name} holds {values.size} values; its header says {shape}")
    return values.reshape(shape)


def read_raw(spec: DatasetSpec, root: str | Path, train: bool) -> Split:
    """The idx pair as stored: uint8 images [N, 28, 28], int64 labels. Splitting these before converting to float
    keeps a run's peak memory at one float copy of the data instead of two."""
    which, raw = ("train" if train else "t10k"), spec.raw_dir(root)
    try:
        images = read_idx(raw / f"{which}-images-idx3-ubyte")
        labels = read_idx(raw / f"{which}-labels-idx1-ubyte")
    except (OSError, ValueError) as err:
        raise DataError(f"{raw}: cannot read the {which} idx files ({type(err).__name__}: {err})") from None
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{raw}: images {images.shape} and labels {labels.shape} do not match")
    return Split(torch.from_numpy(images), torch.from_numpy(labels).long())


def load_splits(
    spec: DatasetSpec,
    root: str | Path,
    *,
    split_seed: int = 0,
    val_size: int = 10_000,
    subset: int | None = None,
    test_subset: int | None = None,
    normalize: bool = False,
    download: bool = True,
) -> Splits:
    """Verified train/val/test tensors. `subset` keeps the first N of the shuffled training split; `test_subset` keeps
    N test images drawn with `split_seed`, in the files' order: not the first N, since MNIST's test file puts its
    cleaner half first."""
    ensure_files(spec, root, download=download)
    full_train, test = read_raw(spec, root, train=True), read_raw(spec, root, train=False)
    if not 0 < val_size < len(full_train):
        raise ConfigError(f"data.val_size={val_size} must be between 1 and {len(full_train) - 1}")
    order = torch.randperm(len(full_train), generator=torch.Generator().manual_seed(split_seed))
    n_train = len(full_train) - val_size
    train_order = order[:n_train]  # the images a subset keeps are picked before any is copied
    if subset is not None:
        train_order = train_order[: count_of("data.subset", subset, "the training split", n_train)]
    train, val = full_train.take(train_order), full_train.take(order[n_train:])
    if test_subset is not None:
        count = count_of("data.test_subset", test_subset, "the test set", len(test))
        drawn = torch.randperm(len(test), generator=torch.Generator().manual_seed(split_seed))[:count]
        test = test.take(drawn.sort().values)
    train, val, test = to_float(train), to_float(val), to_float(test)
    if normalize:
        train, val, test = (Split((s.x - spec.mean) / spec.std, s.y) for s in (train, val, test))
    return Splits(train=train, val=val, test=test, spec=spec)
