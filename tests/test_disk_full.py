"""A full disk during a run: one line naming the folder, the run recorded as failed where that still fits, last.pt
kept, and the run resumes once there is space again. On a real small tmpfs when the tests run as root (CI does), and
by making torch.save's writer fail as it does on a full disk otherwise."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess

import pytest
import torch

from cnnlab.errors import describe_os_error
from cnnlab.runs.checkpoint import load_checkpoint, save_checkpoint
from cnnlab.runs.layout import LAST
from tests.helpers import TINY, invoke, run_command

# two epochs: epoch 1's last.pt fits (about 10 MB of weights and Adam state), epoch 2's second copy does not
RUN = (*TINY, "trainer.epochs=2", "data.subset=512")
SMALL_MB, LARGE_MB = 14, 96


def can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


@pytest.fixture
def small_disk(tmp_path):
    """A real tmpfs of SMALL_MB; yields its path and a function that grows it."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SMALL_MB}m", "tmpfs", str(mountpoint)])
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (mount exited {proc.returncode}); the injected test covers it")

    def grow() -> None:
        subprocess.run(["mount", "-o", f"remount,size={LARGE_MB}m", str(mountpoint)], check=True)

    yield mountpoint, grow
    subprocess.run(["umount", "-l", str(mountpoint)])


@pytest.mark.slow
@pytest.mark.skipif(not can_mount(), reason="mounting a tmpfs needs root; test_short_write_is_a_full_disk covers it")
def test_a_full_disk_mid_run_is_one_line_keeps_last_and_resumes(small_disk, capsys):
    disk, grow = small_disk
    out = disk / "outputs"
    proc = run_command("train", *RUN, "trainer.progress=false", f"paths.output_dir={out}")
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("cnnlab-train: error: the disk is full (No space left on device) writing to "), lines
    assert len(lines) == 1 and "Traceback" not in proc.stdout, proc.stderr
    [run_dir] = list((out / "runs").glob("mnist/adam/*/seed42"))
    assert lines[-1].split("writing to ")[1].startswith(str(run_dir))
    assert load_checkpoint(run_dir / LAST)["epoch"] == 1  # the last consistent snapshot is kept
    assert not list(run_dir.glob(".*.tmp"))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] in ("failed", "running")  # failed when that write still fitted, else the previous state
    if metrics["status"] == "failed":
        assert "No space left on device" in metrics["error"]

    grow()
    capsys.readouterr()
    status, stderr = invoke("train", *RUN, "trainer.progress=false", f"paths.output_dir={out}")  # in this process
    assert status is None, stderr[-3000:]
    assert f"resuming {run_dir} after epoch 1" in capsys.readouterr().out
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "finished"
    assert not (run_dir / LAST).exists()


def test_short_write_is_a_full_disk(tmp_path, monkeypatch):
    """torch.save's zip writer reports a full disk as a RuntimeError without an errno: it becomes ENOSPC naming the
    folder, the temp file is removed and the previous checkpoint stays."""
    path = tmp_path / "run" / LAST
    save_checkpoint(path, {"model": {"w": torch.ones(2)}, "config": {}})
    real_save = torch.save

    def short_write(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 9984 vs 9876")

    monkeypatch.setattr(torch, "save", short_write)
    with pytest.raises(OSError) as err:
        save_checkpoint(path, {"model": {"w": torch.zeros(2)}, "config": {}})
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(path.parent)
    assert describe_os_error(err.value).startswith(
        f"the disk is full (No space left on device) writing to {path.parent}"
    )
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(2))
    assert [p.name for p in path.parent.iterdir()] == [LAST]


def test_an_enospc_on_a_temp_file_names_its_folder(tmp_path):
    err = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / ".metrics.json.abc.tmp"))
    message = describe_os_error(err)
    assert f"writing to {tmp_path};" in message and ".metrics.json.abc.tmp" not in message
