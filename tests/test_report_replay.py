"""The notebook replay in the report: a real 1-epoch replay of the notebook's first run, a 5-epoch replay summary
written with the replay package's own comparison, and a report without any replay."""

import csv
import shutil

import pytest

from cnnlab.errors import ConfigError
from cnnlab.replay.report_section import replay_command
from tests.helpers import BN_SECTION, five_epoch_replay, table
from tests.helpers import replay_column as column
from tests.helpers import replay_report as report


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

    by_run = {row["replay_run"]: row for row in csv.DictReader(result.tables["replay"].open())}
    assert list(by_run) == ["sgd", "adam", "sgd_bn", "adam_bn"]  # the notebook's order
    assert by_run["adam"]["within_tolerance"] == "False" and float(by_run["adam"]["difference"]) == pytest.approx(-0.5)
    assert by_run["sgd_bn"]["report_runs"] == "sgd_bn" and float(
        by_run["adam_bn"]["eval_minus_training"]
    ) == pytest.approx(0.12)


def test_without_a_replay_the_report_says_how_to_make_one_and_has_no_column(make_cfg, tmp_path):
    replay_dir = tmp_path / "replay"
    five_epoch_replay(replay_dir, {"sgd": 81.11}, {"sgd": 81.11})
    result, text = report(make_cfg, replay_dir)
    assert result.tables["replay"].is_file() and "notebook replay %" in text

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
    assert "replay" not in result.tables and not (result.report_dir / "replay.csv").exists()  # the stale one is gone


def test_the_hint_names_only_settings_that_differ_from_the_defaults(tmp_path):
    default = tmp_path / "outputs" / "replay"
    assert replay_command(5, default, default) == "cnnlab-replay"
    elsewhere = tmp_path / "elsewhere"
    assert replay_command(1, elsewhere, default) == f"cnnlab-replay epochs=1 paths.replay_dir={elsewhere}"


def test_replay_epochs_must_be_a_positive_integer(make_cfg, tmp_path):
    with pytest.raises(ConfigError, match=r"replay_epochs=0 must be a positive integer"):
        report(make_cfg, tmp_path / "replay", "replay_epochs=0")
    assert not (tmp_path / "outputs" / "report").exists()
