"""Shared fixtures: configs composed against tmp_path and the one real notebook replay (plain helpers: helpers.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from tests.helpers import compose_config, run_command

# Fixtures that train or start runs once for several tests (scope: module or session). Under `--dist loadgroup`
# (scripts/test.sh) the tests that use one of them share a worker, so it is built once; every other test goes to
# whichever worker is free.
SHARED_FIXTURES = {
    "runs": "module",  # test_report.py, test_bad_inputs.py
    "run_dir": "module",  # test_analysis_runs.py, test_robustness.py
    "crashed": "module",  # test_resume.py
    "comparison_report": "module",  # test_comparison.py
    "report": "module",  # test_report_browser.py
    "finished": "module",  # test_verify.py
    "first_sgd_replay": "session",
    "slurm_cluster": "session",
}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        shared = [name for name in SHARED_FIXTURES if name in getattr(item, "fixturenames", ())]
        if shared and not any(item.iter_markers("xdist_group")):  # a module's own group (test_cuda.py's) stands
            name = shared[0]
            group = name if SHARED_FIXTURES[name] == "session" else f"{item.nodeid.split('::')[0]}:{name}"
            item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose a primary config with outputs redirected into tmp_path (data stays in the repo's data/)."""

    def _make(*overrides: str, config_name: str = "train") -> DictConfig:
        return compose_config(config_name, *overrides, output_dir=tmp_path / "outputs")

    return _make


@pytest.fixture(scope="session")
def first_sgd_replay(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    """A real `cnnlab-replay epochs=1 runs=1` (the notebook's first SGD epoch on the MNIST files, about a minute),
    shared by the replay's own test and the report's replay column: the process and its output directory."""
    out = tmp_path_factory.mktemp("replayed")
    args = ["epochs=1", "runs=1", "num_threads=1", "progress=false", f"paths.output_dir={out}"]
    return run_command("replay", *args), out
