"""Datasets: where the files come from, how they are verified, and how they become tensors and batches."""

from cnnlab.data.batches import Batches
from cnnlab.data.files import ensure_files, verify_files
from cnnlab.data.specs import DATASETS, DatasetSpec, get_spec
from cnnlab.data.specs import FASHION_MNIST as FASHION_MNIST_SPEC
from cnnlab.data.specs import MNIST as MNIST_SPEC
from cnnlab.data.splits import Split, Splits, load_splits

__all__ = [
    "DATASETS",
    "Batches",
    "DatasetSpec",
    "FASHION_MNIST_SPEC",
    "MNIST_SPEC",
    "Split",
    "Splits",
    "ensure_files",
    "get_spec",
    "load_splits",
    "verify_files",
]
