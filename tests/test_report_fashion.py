"""The report on Fashion-MNIST (`data=fashion_mnist`): its own runs, folder, title and class names, and none of the
original MNIST report's published values or notebook replay."""

import csv
import json
import re
import shlex
import shutil
import subprocess

import pytest

from cnnlab.config import to_plain
from cnnlab.data import FASHION_MNIST_SPEC
from cnnlab.errors import ConfigError
from cnnlab.reporting import build_report
from cnnlab.runs.layout import run_dir_for
from cnnlab.training.runner import train
from tests.helpers import (
    REPO,
    TABLES_ONLY,
    TINY,
    TRAIN_OVERRIDES,
    compose_config,
    five_epoch_replay,
    invoke,
    table,
)

REPORT_RUNS = {
    "sgd": "SGD",
    "momentum": "Momentum",
    "rmsprop": "RMSProp",
    "adam": "Adam",
    "sgd_bn": "SGD + batch norm",
    "adam_bn": "Adam + batch norm",
}
DEBIAN = FASHION_MNIST_SPEC.debian_dir


def missing_commands(text):
    """{label: cnnlab-train arguments} of the runs the report lists as missing."""
    return {
        label: shlex.split(cmd)[1:]
        for label, cmd in re.findall(r"^- (.+?), seeds? [\d, ]+: `(cnnlab-train .+)`$", text, flags=re.M)
    }


@pytest.mark.slow
def test_a_fashion_report_over_no_runs_lists_the_six_fashion_runs_in_its_own_folder(tmp_path, capsys):
    out = tmp_path / "outputs"
    # the optimizer comparison's section is the same whichever `data` the report is of (test_comparison's); the
    # command runs in this process (test_report.py runs it as a user does)
    status, stderr = invoke("report", "data=fashion_mnist", f"paths.output_dir={out}", "comparison.enabled=false")
    assert status is None, stderr
    stdout = capsys.readouterr().out
    report_dir = out / "report-fashion_mnist"
    assert f"report: {report_dir / 'REPORT.md'}" in stdout and "replay: none (the notebook trained on MNIST)" in stdout
    assert "6 expected runs missing" in stdout and "analyses: 0 shown, 9 skipped (run missing), 0 failed" in stdout
    assert not (out / "report").exists()  # MNIST's report folder is not touched
    text = (report_dir / "REPORT.md").read_text()

    assert text.startswith("# CNN on Fashion-MNIST: optimizers and batch norm\n")
    assert "<title>CNN on Fashion-MNIST: optimizers and batch norm</title>" in (report_dir / "report.html").read_text()
    assert re.search(r"^## Table 1: optimizers without batch norm \(Fashion-MNIST, lr 0.001", text, flags=re.M)
    assert "MNIST" not in text.replace("Fashion-MNIST", "") and "replay" not in text
    assert "The original report published no values for Fashion-MNIST: the tables hold these runs only." in text
    assert list(table(text, "Table 1")[0]) == [
        "run",
        "n",
        "test accuracy % (mean ± std, min–max)",
        "95% interval",
        "train time s",
        "time to target",
        "final val accuracy %",
    ]
    assert list(table(text, "Model")[0]) == ["count", "ours"]
    assert "the first epoch whose validation accuracy reached 90% and" in text  # Fashion-MNIST's own target

    # every missing run's command trains exactly the directory `experiment=report data=fashion_mnist` writes
    commands = missing_commands(text)
    assert set(commands) == set(REPORT_RUNS.values())
    for key, label in REPORT_RUNS.items():
        args = commands[label]
        assert args[:2] == [f"+experiment/report={key}", "data=fashion_mnist"] and args[-1] == "seed=42"
        trained = compose_config(
            "train", f"+experiment/report={key}", "data=fashion_mnist", f"paths.output_dir={out}", "seed=42"
        )
        expected_dir = run_dir_for(to_plain(trained))
        assert run_dir_for(to_plain(compose_config("train", *args))) == expected_dir
        assert expected_dir.relative_to(out / "runs").parts[:2] == ("fashion_mnist", key.replace("_", "-"))
    assert (
        "Or all at once (finished runs are reused): "
        f"`cnnlab-train experiment=report data=fashion_mnist paths.runs_dir={out / 'runs'} seed=42`" in text
    )


def test_the_mnist_report_keeps_its_folder_published_values_and_commands(tmp_path):
    cfg = compose_config("report", f"paths.output_dir={tmp_path}", *TABLES_ONLY)
    assert cfg.paths.report_dir == str(tmp_path / "report") and cfg.runs.sgd.published.test_accuracy == 81.11
    text = build_report(cfg).markdown.read_text()
    assert text.startswith("# CNN on MNIST: optimizers and batch norm, reproduced\n")
    assert table(text, "Table 1")[0]["published %"] == "81.11" and table(text, "Model")[0]["published"] == "799,078"
    assert "No notebook replay yet" in text and "the first epoch whose validation accuracy reached 98% and" in text
    assert missing_commands(text)["SGD"][:2] == ["+experiment/report=sgd", f"paths.runs_dir={tmp_path / 'runs'}"]
    assert (
        compose_config("report", "data=fashion_mnist", "paths.report_dir=/elsewhere").paths.report_dir == "/elsewhere"
    )


def test_a_replay_of_the_mnist_notebook_never_enters_a_fashion_report(tmp_path):
    five_epoch_replay(tmp_path / "outputs" / "replay", {"sgd": 81.11, "sgd_bn": 96.84}, {"sgd": 81.11, "sgd_bn": 97.00})
    base = [f"paths.output_dir={tmp_path / 'outputs'}", *TABLES_ONLY]
    assert "notebook replay %" in build_report(compose_config("report", *base)).markdown.read_text()
    result = build_report(compose_config("report", *base, "data=fashion_mnist"))
    text = result.markdown.read_text()
    assert "replay" not in result.tables and "notebook replay" not in text and "cnnlab-replay" not in text
    assert (tmp_path / "outputs" / "report" / "replay.csv").is_file()  # the MNIST report's own is left alone


def test_data_settings_of_the_report_change_the_expected_runs_as_they_change_training(tmp_path):
    base = [f"paths.output_dir={tmp_path}", *TABLES_ONLY, "data=fashion_mnist"]
    as_report_setting = build_report(compose_config("report", *base, "data.subset=256"))
    as_train_override = build_report(compose_config("report", *base, "train_overrides=['data.subset=256']"))
    assert [e.name for e, _ in as_report_setting.missing] == [e.name for e, _ in as_train_override.missing]
    assert all(e.name.startswith("fashion_mnist/") and "-n256-" in e.name for e, _ in as_report_setting.missing)
    assert as_report_setting.missing[0][0].train_args[:3] == (
        "+experiment/report=sgd",
        "data=fashion_mnist",
        "data.subset=256",
    )


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["train_overrides=['data=fashion_mnist']"],
            "train_overrides=['data=fashion_mnist'] train on fashion_mnist, but the report is for data=mnist; "
            "give the report data=fashion_mnist instead",
        ),
        (["data.name=cifar"], "data.name='cifar' is unknown; allowed: mnist, fashion_mnist"),
    ],
)
def test_a_report_whose_runs_would_be_on_another_dataset_is_an_error_before_anything_is_written(
    tmp_path, overrides, message
):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_report(compose_config("report", f"paths.output_dir={tmp_path}", *overrides))
    assert not any(tmp_path.iterdir())


def test_reproduce_gives_the_report_the_dataset_and_the_other_arguments_as_train_overrides(tmp_path):
    """scripts/reproduce.sh in a copy whose set-up and commands only record how they were called."""
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "reproduce.sh", root / "scripts")
    shutil.copy(REPO / "scripts" / "launcher.sh", root / "scripts")
    (root / "scripts" / "setup.sh").write_text('echo "$CNNLAB_DATASETS" > setup.args\n')
    (root / ".venv" / "bin").mkdir(parents=True)
    for name in ("cnnlab-train", "cnnlab-report"):
        (root / ".venv" / "bin" / name).write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {name}.args\n')
        (root / ".venv" / "bin" / name).chmod(0o755)
    proc = subprocess.run(
        ["bash", "scripts/reproduce.sh", "data=fashion_mnist", "debug=smoke"],
        cwd=root,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "LAUNCHER": "basic", "SEEDS": "0,1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert (root / "setup.args").read_text().split() == ["mnist", "fashion_mnist"]
    assert (root / "cnnlab-train.args").read_text().splitlines() == [
        "experiment=report",
        "seed=0,1",
        "trainer.progress=false",
        "data=fashion_mnist",
        "debug=smoke",
    ]
    report_args = (root / "cnnlab-report.args").read_text().splitlines()
    assert report_args == ["seeds=[0,1]", "train_overrides=['debug=smoke']", "data=fashion_mnist"]
    # ... which is a report on the smoke runs of Fashion-MNIST
    cfg = compose_config("report", *report_args, f"paths.output_dir={tmp_path}", *TABLES_ONLY)
    missing = build_report(cfg).missing
    assert len(missing) == 6 and all(e.name.startswith("fashion_mnist/") and "-n2000-" in e.name for e, _ in missing)


# Tiny analyses that show class names (activations, occlusion, untargeted images) on the tiny Adam + batch-norm run.
ANALYSES = [
    {"analysis": "activations", "run": "adam_bn", "options": {"layer": "conv1", "image": 0}},
    {"analysis": "occlusion", "run": "adam_bn", "options": {"sizes": [14], "images": 2, "stride": 7}},
    {
        "analysis": "adversarial",
        "run": "adam_bn",
        "options": {"mode": "untargeted", "adversarial_preset": {"iterations": 3}},
    },
]


@pytest.mark.slow
@pytest.mark.skipif(
    DEBIAN is None or not DEBIAN.is_dir(),
    reason="needs Debian's dataset-fashion-mnist (CNNLAB_DATASETS=fashion_mnist scripts/setup.sh installs it)",
)
def test_a_report_over_tiny_real_fashion_runs_names_the_classes(tmp_path):
    out, data_dir = tmp_path / "outputs", tmp_path / "data"
    common = [f"paths.output_dir={out}", f"paths.data_dir={data_dir}", "data=fashion_mnist"]
    dirs = {
        key: train(compose_config("train", *common, *TINY, f"+experiment/report={key}", "seed=0")).run_dir
        for key in ("sgd", "adam_bn")
    }
    # an MNIST configuration beside them belongs to MNIST's report, not to this one
    shutil.copytree(dirs["sgd"], out / "runs" / "mnist" / "sgd" / "e1-lr0.001-bs64-n256-00000000" / "seed0")
    cfg = compose_config(
        "report",
        *common,
        "seeds=[0]",
        TRAIN_OVERRIDES,
        "tables.optimizers=[sgd]",
        "tables.batch_norm=[sgd,adam_bn]",
        "target_accuracy=10",
        "analysis_device=cpu",
        "robustness.enabled=false",  # test_robustness's, minutes of attacks here
        "tuning.enabled=false",
        "comparison.enabled=false",
    )
    cfg.analyses = ANALYSES
    result = build_report(cfg)
    text = result.markdown.read_text()

    assert result.report_dir == out / "report-fashion_mnist" and not result.failed
    accuracy = json.loads((dirs["adam_bn"] / "metrics.json").read_text())["test"]["accuracy"]
    adam_bn = table(text, "Table 2")[1]
    assert list(adam_bn) == [
        "run",
        "batch norm",
        "n",
        "test accuracy % (mean ± std, min–max)",
        "95% interval",
        "train time s",
        "parameters",
    ]
    assert (adam_bn["run"], adam_bn["test accuracy % (mean ± std, min–max)"], adam_bn["parameters"]) == (
        "Adam + batch norm",
        f"{accuracy:.2f}",
        "800,206",
    )
    assert "None: every expected run finished." in text and (result.report_dir / "best_model.pt").is_file()
    per_run = text.split("## Per-run results", 1)[1].split("\n## ", 1)[0]
    assert per_run.count("Ankle boot") == 2 and "T-shirt/top" in per_run  # both runs' classification reports

    analyses = text.split("## Analyses", 1)[1].split("\n## ", 1)[0]
    assert "3 of 3 analyses shown" in analyses
    assert re.search(r"Test image 0 \(actual Ankle boot\) is predicted ", analyses)  # Fashion-MNIST's first test image
    assert [r["actual"] for r in table(analyses.split("### Occlusion", 1)[1], "")] == ["Ankle boot", "Pullover"]
    targets = [r["target"] for r in table(analyses.split("### Untargeted", 1)[1], "")]
    assert targets == list(FASHION_MNIST_SPEC.classes)

    with result.tables["results"].open() as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["report_run"] for r in rows) == ["adam_bn", "sgd"] and {r["data"] for r in rows} == {
        "fashion_mnist"
    }
