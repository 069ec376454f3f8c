"""The idx loading path on small files the tests write, and the split/batch logic."""

import dataclasses
import hashlib
import os

import pytest
import torch

from cnnlab.data import MNIST_SPEC as MNIST
from cnnlab.data import Batches, Split, ensure_files, load_splits
from cnnlab.data.splits import read_raw
from cnnlab.errors import ConfigError, DataError
from tests.helpers import compose_config, write_fake_dataset


def spec_for(digests):
    """MNIST's loader with the digests of the test's own files and no network or npm sources."""
    return dataclasses.replace(MNIST, sha256=digests, npm_package=None)


@pytest.fixture
def fake(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    return tmp_path, raw, spec_for(write_fake_dataset(raw))


def test_loads_idx_files_like_to_tensor(fake):
    root, raw, spec = fake
    splits = load_splits(spec, root, val_size=10, download=False)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (50, 10, 20)
    assert splits.train.x.shape == (50, 1, 28, 28) and splits.train.x.dtype == torch.float32
    assert splits.train.x.min() >= 0.0 and splits.train.x.max() <= 1.0
    raw_bytes = (raw / "t10k-images-idx3-ubyte").read_bytes()[16 : 16 + 28 * 28]
    assert torch.equal(splits.test.x[0, 0].flatten(), torch.tensor(list(raw_bytes), dtype=torch.float32) / 255)
    assert splits.test.y.tolist() == [i % 10 for i in range(20)]


@pytest.mark.parametrize("train", [True, False], ids=["train", "t10k"])
def test_the_idx_reader_gives_what_torchvision_reads_from_the_real_files(train):
    """cnnlab reads the idx files itself (torchvision's import is not paid at every start-up); on real MNIST it must
    give torchvision's own arrays, bit for bit."""
    root = compose_config("train").data.root
    ensure_files(MNIST, root, download=False)
    ours = read_raw(MNIST, root, train=train)
    theirs = MNIST.torchvision_class(root, train=train, download=False)
    assert torch.equal(ours.x, theirs.data) and torch.equal(ours.y, theirs.targets)
    assert ours.x.dtype == torch.uint8 and ours.y.dtype == torch.int64 and len(ours) == (60_000 if train else 10_000)


def test_split_is_seeded_disjoint_and_independent_of_torch_seed(fake):
    root, _, spec = fake
    torch.manual_seed(1)
    a = load_splits(spec, root, split_seed=3, val_size=10, download=False)
    torch.manual_seed(2)
    b = load_splits(spec, root, split_seed=3, val_size=10, download=False)
    c = load_splits(spec, root, split_seed=4, val_size=10, download=False)
    assert torch.equal(a.train.x, b.train.x) and not torch.equal(a.train.x, c.train.x)
    rows = {tuple(x.flatten().tolist()) for x in torch.cat([a.train.x, a.val.x])}
    assert len(rows) == 60  # every training image exactly once across train + val


def test_subset_takes_the_head_of_the_shuffled_split(fake):
    root, _, spec = fake
    full = load_splits(spec, root, val_size=10, download=False)
    sub = load_splits(spec, root, val_size=10, subset=7, download=False)
    assert torch.equal(sub.train.x, full.train.x[:7])
    with pytest.raises(ConfigError, match=r"data.subset=51 .*\(50\)"):
        load_splits(spec, root, val_size=10, subset=51, download=False)


def test_test_subset_is_a_seeded_draw_in_the_files_order(fake):
    """Not the head of the files (MNIST's test set puts its easier half first): a draw that follows split_seed."""
    root, _, spec = fake
    full = load_splits(spec, root, val_size=10, download=False).test
    rows = [tuple(x.flatten().tolist()) for x in full.x]
    drawn = {
        seed: load_splits(spec, root, split_seed=seed, val_size=10, test_subset=8, download=False).test
        for seed in (0, 0, 1)
    }
    again = load_splits(spec, root, split_seed=0, val_size=10, test_subset=8, download=False).test
    where = [rows.index(tuple(x.flatten().tolist())) for x in drawn[0].x]
    assert len(set(where)) == 8 and where == sorted(where) and where != list(range(8))
    assert torch.equal(drawn[0].y, full.y[where]) and torch.equal(again.x, drawn[0].x)
    assert not torch.equal(drawn[1].x, drawn[0].x)
    with pytest.raises(ConfigError, match=r"data.test_subset=21 .*\(20\)"):
        load_splits(spec, root, val_size=10, test_subset=21, download=False)


def test_normalize_uses_dataset_statistics(fake):
    root, _, spec = fake
    plain = load_splits(spec, root, val_size=10, download=False)
    norm = load_splits(spec, root, val_size=10, normalize=True, download=False)
    assert torch.allclose(norm.test.x, (plain.test.x - spec.mean) / spec.std)


def test_checksum_mismatch_names_the_file(fake):
    root, raw, spec = fake
    with open(raw / "train-labels-idx1-ubyte", "r+b") as fh:
        fh.seek(20)
        fh.write(b"\x07")
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte has SHA-256 .* expected"):
        load_splits(spec, root, val_size=10, download=False)


def test_a_file_changed_in_place_is_caught_even_with_its_size_and_mtime_kept(fake):
    root, raw, spec = fake
    ensure_files(spec, root, download=False)
    labels = raw / "train-labels-idx1-ubyte"
    before = labels.stat()
    blob = bytearray(labels.read_bytes())
    blob[8:] = bytes((b + 1) % 10 for b in blob[8:])  # every label shifted by one, the header kept
    labels.write_bytes(bytes(blob))
    os.utime(labels, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert labels.stat().st_size == before.st_size and labels.stat().st_mtime_ns == before.st_mtime_ns
    with pytest.raises(DataError, match="train-labels-idx1-ubyte has SHA-256"):
        ensure_files(spec, root, download=False)


@pytest.mark.parametrize(
    ("name", "damage", "needle"),
    [
        ("train-images-idx3-ubyte", lambda data: data[:1000], "MNIST/raw: cannot read the train idx files"),
        ("t10k-labels-idx1-ubyte", lambda data: b"\x01\x02" + data[2:], "cannot read the t10k idx files"),
    ],
    ids=["truncated", "wrong-magic"],
)
def test_a_damaged_idx_file_with_a_matching_digest_is_a_clear_error(tmp_path, name, damage, needle):
    """The digest is updated to the damaged file's, so reading it is what must fail, with one clear error."""
    raw = tmp_path / "MNIST" / "raw"
    digests = write_fake_dataset(raw)
    path = raw / name
    path.write_bytes(damage(path.read_bytes()))
    digests[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(DataError, match=needle):
        load_splits(spec_for(digests), tmp_path, val_size=10, download=False)


def test_missing_files_without_sources_say_where_to_put_them(tmp_path):
    spec = spec_for(dict(MNIST.sha256))
    with pytest.raises(DataError, match=r"files missing from .*MNIST/raw: train-images-idx3-ubyte.*copy the four"):
        ensure_files(spec, tmp_path, download=False)


def test_data_root_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"data.root=.*file is a file"):
        ensure_files(MNIST, tmp_path / "file")


def test_unwritable_data_root_when_fetching():
    # /sys is a read-only filesystem even for root, unlike a chmod-ed folder
    with pytest.raises(DataError, match=r"data.root=/sys/cnnlab-data: cannot create"):
        ensure_files(spec_for(dict(MNIST.sha256)), "/sys/cnnlab-data", download=True)


def test_batches_cover_every_sample_once_in_a_seeded_order():
    split = Split(torch.arange(10.0).view(10, 1, 1, 1), torch.arange(10))
    order = lambda seed: torch.cat([y for _, y in Batches(split, 4, True, torch.Generator().manual_seed(seed))])  # noqa: E731
    assert sorted(order(0).tolist()) == list(range(10))
    assert torch.equal(order(0), order(0)) and not torch.equal(order(0), order(1))
    assert [len(y) for _, y in Batches(split, 4)] == [4, 4, 2]


def test_download_false_never_fetches_and_names_the_missing_files(tmp_path):
    with pytest.raises(DataError, match=r"data.download=false: .*train-images-idx3-ubyte.*`cnnlab-data data=mnist"):
        ensure_files(MNIST, tmp_path / "data", download=False)
    assert not (tmp_path / "data").exists()
