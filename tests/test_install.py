"""Installing cnnlab: the configs ship inside the package (top-level conf/ is their one source), the data folder can
be named by an environment variable, and a user's own config folder works as Hydra users expect."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cnnlab.config import CONF_DIR, DATA_DIR_ENV, compose_config, register_resolvers, with_config_dir
from cnnlab.errors import ConfigError
from tests.helpers import REPO, invoke


def _user_conf(root: Path) -> Path:
    (root / "experiment").mkdir(parents=True)
    (root / "experiment" / "mine.yaml").write_text("# @package _global_\ntrainer:\n  epochs: 3\n")
    return root


def test_the_package_finds_the_checkouts_configs():
    assert CONF_DIR.resolve() == (REPO / "conf").resolve()


def test_the_data_folder_can_be_named_by_an_environment_variable(monkeypatch, tmp_path):
    register_resolvers()
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert compose_config("train").paths.data_dir == str(tmp_path)
    monkeypatch.delenv(DATA_DIR_ENV)
    assert compose_config("train").paths.data_dir == f"{REPO}/data"


def test_a_users_config_dir_adds_their_experiments(tmp_path):
    overrides = with_config_dir(["experiment=mine"], str(_user_conf(tmp_path)))
    assert compose_config("train", overrides).trainer.epochs == 3


def test_a_users_config_dir_keeps_their_own_search_path(tmp_path):
    other = _user_conf(tmp_path / "other")
    overrides = with_config_dir([f"hydra.searchpath=[file://{other}]"], str(tmp_path))
    assert overrides == [f'hydra.searchpath=["file://{tmp_path}","file://{other}"]']


@pytest.mark.parametrize(
    ("setup", "needle"),
    [(lambda root: root / "missing", "no such folder"), (lambda root: root, "not a readable YAML config")],
)
def test_a_missing_or_broken_config_dir_is_one_error(tmp_path, setup, needle):
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "bad.yaml").write_text("trainer: [\n  epochs: 1\n")
    with pytest.raises(ConfigError, match=needle):
        with_config_dir([], str(setup(tmp_path)))


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--config-dir", "missing", "--help"], ["--config-dir missing: no such folder"]),
        (
            ["--config-dir", "conf", "experiment=nope"],
            ["experiment=nope is not an option", "(searched {tmp}/conf/experiment, "],
        ),
    ],
)
def test_a_bad_config_dir_on_the_command_line_is_one_line_exit_2(tmp_path, monkeypatch, args, needles):
    """Through the command's real entry point, in this process, from the folder a relative --config-dir is read in."""
    _user_conf(tmp_path / "conf")
    monkeypatch.chdir(tmp_path)
    status, stderr = invoke("train", *args)
    assert (status, stderr.count("\n")) == (2, 1), stderr
    assert all(needle.format(tmp=tmp_path) in stderr for needle in needles), stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf"]


@pytest.mark.slow
def test_the_wheel_holds_every_config(tmp_path):
    argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)]
    subprocess.run([*argv, str(REPO)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("cnnlab-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n.removeprefix("cnnlab/conf/") for n in names if n.startswith("cnnlab/conf/"))
    assert shipped == sorted(str(p.relative_to(REPO / "conf")) for p in (REPO / "conf").rglob("*.yaml"))
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


@pytest.mark.slow
def test_the_documented_python_api_runs(tmp_path):
    """docs/install.md's Python snippets, run in order in one namespace (outputs redirected under tmp_path)."""
    text = (REPO / "docs" / "install.md").read_text()
    snippets = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(snippets) == 3
    code = "\n".join(snippets)
    redirected = code.replace('"trainer.progress=false"]', f'"trainer.progress=false", "paths.output_dir={tmp_path}"]')
    assert redirected != code
    namespace: dict = {}
    exec(compile(redirected, "docs/install.md", "exec"), namespace)
    assert namespace["metrics"]["status"] == "finished"
    assert namespace["analysis"].out_dir.is_relative_to(tmp_path)
