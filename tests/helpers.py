"""Plain helpers shared by the test modules (fixtures live in conftest.py): running a command as a user does, the
tiny training configuration, configs composed with Hydra's compose API, report tables, and idx-file writers."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib
import io
import logging
import signal
import struct
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from cnnlab.atomic import write_json
from cnnlab.config import CONF_DIR, project_root
from cnnlab.replay.published import NOTEBOOK_RUNS
from cnnlab.replay.results import compare_run, summary_path

REPO = project_root()

# Real MNIST, seconds per run: one epoch (debug=smoke) on 256 training images, validated on 1,000. Run-directory
# names some tests assert on follow from these values (e.g. "e1-lr0.001-bs64-n256").
TINY_RUN = ("debug=smoke", "data.subset=256", "data.val_size=1000")
# ...drawing no figures, which would be most of such a run's time: a test that looks at them adds FIGURES
TINY = (*TINY_RUN, "trainer.figures=false")
FIGURES = "trainer.figures=true"
# The report's setting that makes its expected runs the TINY ones (figures are not part of a run's identity).
TRAIN_OVERRIDES = "train_overrides=[" + ",".join(f"'{o}'" for o in TINY_RUN) + "]"


class CreatesFile:
    """Unpickling this calls open(path, "w"): the file appears if the loader executes pickled code."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def command_argv(command: str, *args: str) -> list[str]:
    """The argv of `cnnlab-<command> args...`, run as a module of this interpreter so that it imports the code under
    test whichever console scripts are installed."""
    return [sys.executable, "-m", f"cnnlab.cli.{command}", *args]


def sigint_as_at_a_terminal() -> None:
    """`preexec_fn` of a run that a test interrupts with Ctrl-C: SIGINT handled as at a terminal even where the test
    process ignores it (pytest-xdist's workers, a suite started with `&`), since children inherit an ignored signal,
    which turns Python's KeyboardInterrupt off."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_command(
    command: str,
    *args: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """`cnnlab-<command> args...` (command: train, data, summary, report, replay, bench, filters, activations,
    occlusion or adversarial) in a subprocess, with its stdout and stderr captured as text."""
    argv = command_argv(command, *args)
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def compose_config(
    name: str, *overrides: str, output_dir: Path | None = None, return_hydra_config: bool = False
) -> DictConfig:
    """conf/<name>.yaml composed with `overrides` as the command would see it; with `output_dir`, every output goes
    there (data stays in the repository's data/)."""
    if output_dir is not None:
        overrides = (f"paths.output_dir={output_dir}", *overrides)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(name, overrides=list(overrides), return_hydra_config=return_hydra_config)


@contextlib.contextmanager
def inside_hydra_app() -> Iterator[None]:
    """Hydra initialised on conf/ as it is while a command runs (code that composes must work there too)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield


def table(text: str, title: str) -> list[dict[str, str]]:
    """Rows of the Markdown table under the heading that starts with `title` (with an empty title: in `text` up to its
    next ### heading), as dicts by column."""
    section = text.split(f"## {title}", 1)[1].split("\n## ", 1)[0] if title else text.split("\n### ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in lines[2:]]


def five_epoch_replay(replay_dir: Path, test_accuracy: dict[str, float], eval_accuracy: dict[str, float]) -> None:
    """replay-e5.json for the given runs, each compared with the published numbers by the replay package itself; the
    per-epoch values are the published ones."""
    published = {run.key: run for run in NOTEBOOK_RUNS}
    runs = {}
    for key, accuracy in test_accuracy.items():
        run = published[key]
        history = [
            {"epoch": i + 1, "train_loss": t, "val_loss": v, "val_accuracy": a}
            for i, (t, v, a) in enumerate(run.epochs)
        ]
        runs[key] = {"run_dir": str(replay_dir / key), **compare_run(run, history, accuracy, eval_accuracy[key])}
    summary = {"protocol": "notebook", "epochs": 5, "device": "cpu", "threads": 2, "torch": "2.14.1", "runs": runs}
    write_json(summary_path(replay_dir, 5), summary)


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


def invoke(command: str, *args: str) -> tuple[int | None, str]:
    """`cnnlab-<command> args...` run in this process through its real entry point, as a console script runs it:
    its exit status (None when it returned normally) and what it printed on stderr. The logging that Hydra set up for
    the command (a console handler on this test's stdout, a log file) is taken down again afterwards."""
    module = importlib.import_module(f"cnnlab.cli.{command}")
    err = io.StringIO()
    argv, root = sys.argv, logging.getLogger()
    handlers, level = root.handlers[:], root.level
    sys.argv = [f"cnnlab-{command}", *args]
    try:
        with contextlib.redirect_stderr(err):
            module.main()
    except SystemExit as exit_:
        return exit_.code, err.getvalue()
    finally:
        sys.argv = argv
        for handler in set(root.handlers) - set(handlers):
            handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)  # not `root.level =`: setLevel also drops the levels loggers cached meanwhile
    return None, err.getvalue()


# a report's own sections only: no analyses (test_report's and test_robustness's), tuned comparison (test_tune's) or
# optimizer comparison (test_comparison's, whose 32 config compositions would cost each report seconds)
TABLES_ONLY = ("analyses_enabled=false", "tuning.enabled=false", "comparison.enabled=false")
# the report settings of the replay tests: both tables with the runs a replay maps to
REPLAY_TABLES = ("tables.optimizers=[sgd,adam]", "tables.batch_norm=[sgd,sgd_bn,adam,adam_bn]", *TABLES_ONLY)
BN_SECTION = "## Batch norm in the notebook's evaluation"


def replay_report(make_cfg, replay_dir: Path, *extra: str):
    """The report with the replay under `replay_dir`: the result and its Markdown."""
    from cnnlab.reporting import build_report

    result = build_report(make_cfg(f"paths.replay_dir={replay_dir}", *REPLAY_TABLES, *extra, config_name="report"))
    return result, result.markdown.read_text()


def replay_column(text: str, title: str, header: str = "notebook replay %") -> dict[str, str | None]:
    """The replay column of a report table, by run label."""
    return {row["run"]: row.get(header) for row in table(text, title)}
