"""A real single-node SLURM cluster on this machine for the `slurm` tests: scripts/slurm-local.sh behind a fixture.

The session fixture starts a cluster (the script installs Debian's packages first when it runs as root and they are
missing) and stops it at the end; one that `scripts/slurm-local.sh start` already runs at the usual place
($CNNLAB_SLURM_DIR, default /tmp/cnnlab-slurm) is used and left running. Where no cluster can run (not root, packages
missing and not installable), every test that needs one is skipped with the script's reason, which `-ra` prints.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cnnlab.config import project_root

REPO = project_root()
SCRIPT = REPO / "scripts" / "slurm-local.sh"
STATE_DIR = Path(os.environ.get("CNNLAB_SLURM_DIR", "/tmp/cnnlab-slurm"))
PORT = int(os.environ.get("CNNLAB_SLURM_PORT", "16817"))  # the script's default
UNAVAILABLE = 3  # the script's exit status when no cluster can run on this machine


@dataclass(frozen=True)
class SlurmCluster:
    # for commands that talk to the cluster: its slurm.conf, and this checkout first on the jobs' Python path
    env: dict[str, str]

    def train(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """`cnnlab-train` with these arguments, its jobs submitted to this cluster."""
        return subprocess.run(self.train_command(*args), capture_output=True, text=True, env=self.env, timeout=timeout)

    def train_command(self, *args: str) -> list[str]:
        # submitit runs the jobs with this interpreter; the environment (PYTHONPATH included) travels with sbatch
        return [sys.executable, "-m", "cnnlab.cli.train", *args]

    def command(self, *cmd: str) -> str:
        """A SLURM client command's output (squeue, scontrol, scancel)."""
        return subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=60, check=True).stdout


def script(action: str, state_dir: Path, port: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "CNNLAB_SLURM_DIR": str(state_dir), "CNNLAB_SLURM_PORT": str(port)}
    return subprocess.run(["bash", str(SCRIPT), action], capture_output=True, text=True, env=env, timeout=900)


def own_cluster() -> tuple[Path, int]:
    """Where this session's cluster lives and listens: pytest-xdist workers each start one of their own.

    Worker sessions end at different times, so one worker stopping a shared cluster could pull it from under another
    worker's test (xdist_group keeps the tests together only where pytest-xdist's grouping works).
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ...
    if not worker.startswith("gw"):
        return STATE_DIR, PORT
    number = int(worker[2:]) + 1
    return STATE_DIR.with_name(f"{STATE_DIR.name}-{worker}"), PORT + 2 * number


@pytest.fixture(scope="session", name="slurm_cluster")
def start_slurm_cluster() -> Iterator[SlurmCluster]:
    # a cluster someone started at the usual place is used and left running
    running = script("status", STATE_DIR, PORT).returncode == 0
    state_dir, port = (STATE_DIR, PORT) if running else own_cluster()
    ours = False
    if not running:
        proc = script("start", state_dir, port)
        if proc.returncode == UNAVAILABLE:
            pytest.skip(f"no SLURM cluster on this machine: {proc.stderr.strip().splitlines()[-1]}")
        assert proc.returncode == 0, proc.stderr
        ours = "already running" not in proc.stderr  # the script holds a lock: one of two racing starts finds it up
    python_path = [str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "SLURM_CONF": str(state_dir / "slurm.conf"), "PYTHONPATH": os.pathsep.join(python_path)}
    try:
        yield SlurmCluster(env)
    finally:
        if ours:
            stopped = script("stop", state_dir, port)
            assert stopped.returncode == 0, stopped.stderr
