"""Where studies live, checked before anything is written.

`tune.storage` is an Optuna storage URL or a journal file:

- `sqlite:///<path>` (the default, `outputs/tune/optuna.db`): one file, no server; fine for the processes of one
  machine (SQLite locks the file), not for a network filesystem, where its locking is unreliable.
- `journal:<path>`: Optuna's append-only journal file (`JournalFileBackend`), whose lock works on NFS: the choice for
  SLURM jobs on several nodes that share a filesystem but no database server.
- `postgresql://...`, `mysql+pymysql://...`: a database server (needs its Python driver installed).

Workers spend a study's budget under `budget_lock`: for the two file storages a lock file beside the storage, which
holds on NFS (an O_EXCL create, Optuna's `JournalFileOpenLock`); a server storage has none, and the tuner drops a
trial that a race put over the budget instead (see `tuning.study`).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import sqlalchemy
from optuna.exceptions import ExperimentalWarning
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from cnnlab.errors import ConfigError, first_line

JOURNAL = "journal:"
SETTING = "tune.storage"
SQLITE_TIMEOUT_S = 60  # how long a writer waits for another process's SQLite write lock before failing
CONNECT_TIMEOUT_S = 10  # a database server that does not answer
BUDGET_LOCK_GRACE_S = 60  # a budget lock older than this was left by a killed process and is taken over


@dataclass(frozen=True)
class Storage:
    url: str  # as given; for a journal `journal:<path>`
    kind: str  # sqlite | journal | server
    path: Path | None = None  # the file, for sqlite and journal

    @property
    def shown(self) -> str:
        """The URL for messages, with any password hidden."""
        return self.url if self.kind != "server" else make_url(self.url).render_as_string(hide_password=True)


def parse_storage(url: object) -> Storage:
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(
            f"{SETTING}={url!r} must be a storage URL: sqlite:///<file>, journal:<file> or a database URL"
        )
    if url.startswith(JOURNAL):
        path = url.removeprefix(JOURNAL).removeprefix("//")
        if not path:
            raise ConfigError(f"{SETTING}={url!r} names no file; give journal:<path>")
        return Storage(url, "journal", Path(path))
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            f"{SETTING}={url!r} is not a storage URL; give sqlite:///<file>, journal:<file>, postgresql://... or mysql://..."
        ) from None
    if parsed.get_backend_name() != "sqlite":
        return Storage(url, "server")
    if parsed.database in (None, "", ":memory:"):
        raise ConfigError(f"{SETTING}={url!r} keeps the study in memory, where it is lost; give sqlite:///<file>")
    return Storage(url, "sqlite", Path(parsed.database))


def check_storage(storage: Storage) -> None:
    """Raise a ConfigError when the storage cannot be opened; writes nothing (a missing file is only checked to be
    creatable)."""
    if storage.kind == "server":
        _check_server(make_url(storage.url), storage.shown)
        return
    path = storage.path
    assert path is not None
    if path.is_dir():
        raise ConfigError(f"{SETTING}={storage.url}: {path} is a folder, not a file")
    if not path.exists():
        _check_creatable(path, storage.url)
    elif not os.access(path, os.R_OK | os.W_OK):
        raise ConfigError(f"{SETTING}={storage.url}: cannot open {path} for reading and writing (permission denied)")
    elif storage.kind == "sqlite":
        try:
            with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
                db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as err:
            raise ConfigError(f"{SETTING}={storage.url}: cannot be opened ({err})") from None


def _check_creatable(path: Path, url: str) -> None:
    """The file's nearest existing ancestor is a folder we may write in (the folders between are created later)."""
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"{SETTING}={url}: cannot create {path}: {ancestor} is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(f"{SETTING}={url}: cannot create {path}: {ancestor} is not writable")


def _check_server(url: URL, shown: str) -> None:
    try:
        url.get_dialect().import_dbapi()
    except NoSuchModuleError:
        raise ConfigError(f"{SETTING}={shown}: {url.get_backend_name()!r} is not a database SQLAlchemy knows") from None
    except ImportError as err:
        raise ConfigError(f"{SETTING}={shown}: cannot be opened: its driver is not installed ({err})") from None
    timeout = (
        {"connect_timeout": CONNECT_TIMEOUT_S} if url.get_backend_name() in ("postgresql", "mysql", "mariadb") else {}
    )
    engine = sqlalchemy.create_engine(url, connect_args=timeout)
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as err:
        first = first_line(getattr(err, "orig", None) or err)
        raise ConfigError(f"{SETTING}={shown}: cannot be opened ({first})") from None
    finally:
        engine.dispose()


def exists(storage: Storage) -> bool:
    """Whether the storage can hold studies already (a report reads it then; it never creates one)."""
    if storage.kind != "server":
        return storage.path is not None and storage.path.is_file()
    try:
        check_storage(storage)
    except ConfigError:
        return False
    return True


def open_storage(storage: Storage, *, heartbeat_s: int | None = None, create: bool = True) -> BaseStorage:
    """The Optuna storage, its folder created first. `heartbeat_s`: Optuna's heartbeat for database storages (a worker
    killed hard has its trial marked failed after twice that long); the journal has none. `create=False` (readers of
    an existing storage): no folder and no tables are created."""
    if storage.path is not None and create:
        storage.path.absolute().parent.mkdir(parents=True, exist_ok=True)
    try:
        if storage.kind == "journal":
            return JournalStorage(JournalFileBackend(str(storage.path)))
        engine_kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if storage.kind == "sqlite" else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)  # heartbeat_interval is marked experimental
            return RDBStorage(
                storage.url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_s, skip_table_creation=not create
            )
    except (SQLAlchemyError, RuntimeError, ValueError) as err:
        first = first_line(err)
        raise ConfigError(f"{SETTING}={storage.shown}: cannot be opened ({first})") from None


@contextlib.contextmanager
def budget_lock(storage: Storage) -> Iterator[None]:
    """Held while a worker counts a study's trials and asks for the next one, so that workers never overspend."""
    if storage.path is None:
        yield
        return
    lock = JournalFileOpenLock(f"{storage.path}.budget", grace_period=BUDGET_LOCK_GRACE_S)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def find_study(storage: Storage, study_name: str, opened: dict[str, BaseStorage | None]) -> optuna.Study | None:
    """The study if the storage holds it, else None; never creates either. `opened` caches storages by URL across
    calls, so a report reading many studies of one storage opens it once."""
    if storage.url not in opened:
        opened[storage.url] = open_storage(storage, create=False) if exists(storage) else None
    if opened[storage.url] is None:
        return None
    try:
        return optuna.load_study(study_name=study_name, storage=opened[storage.url])
    except KeyError:
        return None
