"""The notebook replay in the report: a real 1-epoch replay of the notebook's first run, a 5-epoch replay summary
written with the replay package's own comparison, and a report without any replay."""

import csv
import shutil

import pytest

from cnnlab.errors import ConfigError
from cnnlab.replay import load_replay
from cnnlab.replay.results import summary_path
from cnnlab.reporting import build_report
from cnnlab.reporting.replay_section import replay_command
from tests.helpers import five_epoch_replay, table

TABLES = ["tables.optimizers=[sgd,adam]", "tables.batch_norm=[sgd,sgd_bn,adam,adam_bn]", "analyses_enabled=false"]
BN_SECTION = "## Batch norm in the notebook's evaluation"


@pytest.fixture(scope="module")
def replay_dir(first_sgd_replay):
    proc, out = first_sgd_replay
    assert proc.returncode == 0, proc.stderr
    return out / "replay"


def report(make_cfg, replay_dir, *extra):
    result = build_report(make_cfg(f"paths.replay_dir={replay_dir}", *TABLES, *extra, config_name="report"))
    return result, result.markdown.read_text()


def column(text, title, header="notebook replay %"):
    return {row["run"]: row.get(header) for row in table(text, title)}


@pytest.mark.slow
@pytest.mark.xdist_group("notebook_replay")  # one worker runs both tests that read the shared replay
def test_the_replay_column_shows_the_replayed_test_accuracy_beside_the_published_one(make_cfg, replay_dir):
    sgd = load_replay(replay_dir, epochs=1)["runs"]["sgd"]
    result, text = report(make_cfg, replay_dir, "replay_epochs=1")

    first = table(text, "Table 1")[0]
    assert list(first)[list(first).index("published %") + 1] == "notebook replay %"
    # after 1 epoch there is no published test value to take a difference to
    assert column(text, "Table 1") == {"SGD": f"{sgd['test_accuracy']:.2f}", "Adam": "not replayed"}
    assert column(text, "Table 2") == {
        "SGD": f"{sgd['test_accuracy']:.2f}",
        "SGD + batch norm": "not replayed",
        "Adam": "not replayed",
        "Adam + batch norm": "not replayed",
    }
    assert f"`{summary_path(replay_dir, 1)}`" in text and "1 epoch, cpu, 1 thread" in text
    assert BN_SECTION not in text  # no batch-norm run was replayed
    assert "No notebook replay yet" not in text

    html = result.html.read_text()
    assert "<th>notebook replay %</th>" in html and f"<td>{sgd['test_accuracy']:.2f}</td>" in html
    rows = list(csv.DictReader(result.replay_csv.open()))
    assert len(rows) == 1 and rows[0]["replay_run"] == "sgd" and rows[0]["report_runs"] == "sgd"
    assert (
        float(rows[0]["test_accuracy"]) == round(sgd["test_accuracy"], 4) and rows[0]["published_test_accuracy"] == ""
    )
    assert float(rows[0]["test_accuracy_eval_mode"]) == round(sgd["test_accuracy_eval_mode"], 4)


def test_batch_norm_runs_get_the_evaluation_section_and_replays_outside_tolerance_are_marked(make_cfg, tmp_path):
    replay_dir = tmp_path / "replay"
    five_epoch_replay(
        replay_dir,
        {"sgd": 81.12, "adam": 98.53, "sgd_bn": 96.84, "adam_bn": 98.90},
        {"sgd": 81.12, "adam": 98.55, "sgd_bn": 97.00, "adam_bn": 99.02},
    )
    result, text = report(make_cfg, replay_dir)

    # runs map by optimizer and batch norm: sgd_bn's entry stands beside "SGD + batch norm", not beside "SGD"
    assert column(text, "Table 1") == {"SGD": "81.12 (+0.01)", "Adam": "98.53 (-0.50) **outside tolerance**"}
    assert column(text, "Table 2") == {
        "SGD": "81.12 (+0.01)",
        "SGD + batch norm": "96.84 (+0.01)",
        "Adam": "98.53 (-0.50) **outside tolerance**",
        "Adam + batch norm": "98.90 (-0.04)",
    }
    assert "more than 0.05 points (0.3 for RMSProp and Adam)" in text

    assert text.index("## Table 2") < text.index(BN_SECTION) < text.index("## Best configuration")
    section = text.split(BN_SECTION, 1)[1].split("\n## ", 1)[0]
    assert "never called `net.eval()`" in section and "by that batch's own statistics" in section
    rows = table(text, BN_SECTION[3:])
    assert [list(r.values()) for r in rows] == [
        ["SGD + batch norm", "96.83", "96.84", "97.00", "+0.16"],
        ["Adam + batch norm", "98.94", "98.90", "99.02", "+0.12"],
    ]
    assert "Batch norm in the notebook" in result.html.read_text()

    by_run = {row["replay_run"]: row for row in csv.DictReader(result.replay_csv.open())}
    assert list(by_run) == ["sgd", "adam", "sgd_bn", "adam_bn"]  # the notebook's order
    assert by_run["adam"]["within_tolerance"] == "False" and float(by_run["adam"]["difference"]) == pytest.approx(-0.5)
    assert by_run["sgd_bn"]["report_runs"] == "sgd_bn" and float(
        by_run["adam_bn"]["eval_minus_training"]
    ) == pytest.approx(0.12)


def test_without_a_replay_the_report_says_how_to_make_one_and_has_no_column(make_cfg, tmp_path):
    replay_dir = tmp_path / "replay"
    five_epoch_replay(replay_dir, {"sgd": 81.11}, {"sgd": 81.11})
    result, text = report(make_cfg, replay_dir)
    assert result.replay_csv.is_file() and "notebook replay %" in text

    shutil.rmtree(replay_dir)
    result, text = report(make_cfg, replay_dir)
    for title in ("Table 1", "Table 2"):
        assert all("notebook replay %" not in row for row in table(text, title))
    hint = [line for line in text.splitlines() if "cnnlab-replay" in line]
    assert hint == [
        f"No notebook replay yet: `cnnlab-replay paths.replay_dir={replay_dir}` (about 25 minutes on 2 CPU cores) "
        'replays the original notebook\'s runs and adds a "notebook replay" column and a section on batch norm in its '
        "evaluation."
    ]
    assert (
        BN_SECTION not in text and "notebook replay" not in result.html.read_text().split("No notebook replay yet")[0]
    )
    assert result.replay_csv is None and not (result.report_dir / "replay.csv").exists()  # the stale one is gone


def test_the_hint_names_only_settings_that_differ_from_the_defaults(tmp_path):
    default = tmp_path / "outputs" / "replay"
    assert replay_command(5, default, default) == "cnnlab-replay"
    elsewhere = tmp_path / "elsewhere"
    assert replay_command(1, elsewhere, default) == f"cnnlab-replay epochs=1 paths.replay_dir={elsewhere}"


def test_replay_epochs_must_be_a_positive_integer(make_cfg, tmp_path):
    with pytest.raises(ConfigError, match=r"replay_epochs=0 must be a positive integer"):
        report(make_cfg, tmp_path / "replay", "replay_epochs=0")
    assert not (tmp_path / "outputs" / "report").exists()
