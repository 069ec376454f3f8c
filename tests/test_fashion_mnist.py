"""Fashion-MNIST: copied from Debian's gzipped package files and verified, with its class names in every output."""

import dataclasses
import gzip
from pathlib import Path

import pytest

from cnnlab.data import FASHION_MNIST_SPEC, ensure_files, load_splits
from cnnlab.errors import DataError
from cnnlab.runs.layout import run_dir_for
from cnnlab.training.runner import train
from tests.helpers import write_fake_dataset

DEBIAN = FASHION_MNIST_SPEC.debian_dir


def fake_debian(tmp_path: Path):
    """Small gzipped idx files where Debian's package would put them, and a spec that trusts their digests."""
    plain = tmp_path / "plain"
    digests = write_fake_dataset(plain)
    debian = tmp_path / "debian"
    debian.mkdir()
    for name in digests:
        gzip_copy(plain / name, debian / f"{name}.gz")
    return dataclasses.replace(FASHION_MNIST_SPEC, debian_dir=debian, sha256=digests), debian


def gzip_copy(src: Path, dst: Path, edit=lambda blob: blob) -> None:
    with gzip.open(dst, "wb") as fh:
        fh.write(edit(src.read_bytes()))


def test_files_are_copied_from_the_debian_package_and_verified(tmp_path):
    spec, _ = fake_debian(tmp_path)
    raw = ensure_files(spec, tmp_path / "data", download=False)
    assert raw == tmp_path / "data" / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.glob("*-ubyte")) == sorted(spec.sha256)
    splits = load_splits(spec, tmp_path / "data", val_size=10, download=False)
    assert (len(splits.train), len(splits.test)) == (50, 20)
    assert splits.classes[0] == "T-shirt/top" and splits.classes[9] == "Ankle boot"


def test_a_corrupt_debian_copy_is_an_error_naming_the_file(tmp_path):
    spec, debian = fake_debian(tmp_path)
    gzip_copy(
        tmp_path / "plain" / "t10k-labels-idx1-ubyte", debian / "t10k-labels-idx1-ubyte.gz", lambda b: b[:-1] + b"\x07"
    )
    with pytest.raises(DataError, match=r"FashionMNIST/raw/t10k-labels-idx1-ubyte has SHA-256 .* expected"):
        ensure_files(spec, tmp_path / "data", download=False)


def test_report_experiment_runs_on_fashion_mnist(make_cfg):
    cfg = make_cfg("+experiment/report=sgd_bn", "data=fashion_mnist")
    assert cfg.data.name == "fashion_mnist" and cfg.optimizer.name == "sgd" and cfg.model.batch_norm
    assert run_dir_for(cfg).parts[-4:-2] == ("fashion_mnist", "sgd-bn")


@pytest.mark.skipif(
    DEBIAN is None or not DEBIAN.is_dir(),
    reason="needs Debian's dataset-fashion-mnist (CNNLAB_DATASETS=fashion_mnist scripts/setup.sh installs it)",
)
def test_smoke_run_on_real_fashion_mnist_names_the_classes(make_cfg):
    # the set-up's copy in data/ (test_files_are_copied_from_the_debian_package_and_verified copies one afresh)
    result = train(make_cfg("data=fashion_mnist", "debug=smoke", "data.subset=500", "data.val_size=1000"))
    assert result.status == "finished" and result.run_dir.parts[-4] == "fashion_mnist"
    header = (result.run_dir / "confusion_matrix.csv").read_text().splitlines()[0]
    assert header == "true\\predicted," + ",".join(FASHION_MNIST_SPEC.classes)
    assert "Ankle boot" in (result.run_dir / "classification_report.txt").read_text()
    assert result.metrics["test"]["accuracy"] > 30  # well above chance after one epoch on 500 images
