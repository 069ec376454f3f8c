"""The report over tiny real runs (two optimizers x two seeds, 1 epoch on 256 images), checked against numbers
computed here from the runs' own metrics.json files."""

import base64
import csv
import json
import re
import shlex
import shutil
import statistics
from pathlib import Path

import pytest
import torch
from scipy import stats as scipy_stats

from cnnlab.analysis.report_section import AnalysisStatus, parse_entries, title
from cnnlab.analysis.results import NOT_OPTIONS
from cnnlab.config import to_plain
from cnnlab.errors import ConfigError
from cnnlab.reporting import build_report
from cnnlab.reporting.collect import Run
from cnnlab.reporting.results import summarize_config
from cnnlab.runs.layout import run_dir_for
from cnnlab.training.runner import train
from tests.helpers import FIGURES, TABLES_ONLY, TINY, TRAIN_OVERRIDES, CreatesFile, compose_config, run_command, table

T_975_DF1 = 12.7062047  # Student t, 97.5th percentile, 1 degree of freedom (from tables)


def report_cfg(output_dir, *extra):
    """The report over the tiny runs; the Analyses section is off unless a test turns it on (see analyses_cfg)."""
    return compose_config(
        "report",
        "seeds=[0,1,2]",
        TRAIN_OVERRIDES,
        "tables.optimizers=[sgd,adam]",
        "tables.batch_norm=[sgd,sgd_bn]",
        "target_accuracy=40",
        *TABLES_ONLY,
        *extra,
        output_dir=output_dir,
    )


def train_cfg(output_dir, *extra):
    return compose_config("train", *TINY, FIGURES, *extra, output_dir=output_dir)  # the report shows run figures


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{(optimizer, seed): run_dir} for sgd and adam, seeds 0 and 1; the output dir is shared read-only."""
    out = tmp_path_factory.mktemp("report_runs") / "outputs"
    return out, {
        (opt, seed): train(
            train_cfg(out, f"+experiment/report={opt}", f"seed={seed}", "trainer.progress=false")
        ).run_dir
        for opt in ("sgd", "adam")
        for seed in (0, 1)
    }


@pytest.fixture
def outputs(runs, tmp_path):
    """A private copy of the runs, so a test can add or fabricate runs without touching the others."""
    src, dirs = runs
    dst = tmp_path / "outputs"
    shutil.copytree(src / "runs", dst / "runs")
    return dst, {key: dst / d.relative_to(src) for key, d in dirs.items()}


def metrics(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


def fabricate(source, dest, **changes):
    """A run directory copied from `source` with some metrics.json entries changed (None deletes one)."""
    shutil.copytree(source, dest)
    m = {**metrics(source), **changes}
    (dest / "metrics.json").write_text(json.dumps({k: v for k, v in m.items() if v is not None}))
    return dest


@pytest.mark.slow
def test_tables_hold_exactly_the_runs_with_their_statistics(outputs):
    out, dirs = outputs
    result = build_report(report_cfg(out))
    text = result.markdown.read_text()

    rows = table(text, "Table 1")
    assert [r["run"] for r in rows] == ["SGD", "Adam"]
    for row, opt in zip(rows, ("sgd", "adam")):
        acc = [metrics(dirs[opt, s])["test"]["accuracy"] for s in (0, 1)]
        mean, std = statistics.fmean(acc), statistics.stdev(acc)
        assert row["n"] == "2"
        assert row["test accuracy % (mean ± std, min–max)"] == f"{mean:.2f} ± {std:.2f} ({min(acc):.2f}–{max(acc):.2f})"
        half = T_975_DF1 * std / 2**0.5
        low, high = max(mean - half, 0.0), min(mean + half, 100.0)  # two seeds: a wide interval, cut to [0, 100]
        assert row["95% interval"] == f"[{low:.2f}, {high:.2f}]"
        published = {"sgd": 81.11, "adam": 99.03}[opt]
        assert row["published %"] == f"{published:.2f} ({'inside' if low <= published <= high else '**outside**'})"
        # 1 epoch each: the target is reached at epoch 1 after that epoch's seconds, or not at all
        reached = [
            m["history"][0]["epoch_time_s"]
            for m in (metrics(dirs[opt, s]) for s in (0, 1))
            if m["history"][0]["val_accuracy"] >= 40
        ]
        epoch_text = "epoch 1" if len(reached) == 1 else "epoch 1.0"
        expected_cell = (
            f"{epoch_text}, {statistics.fmean(reached):.1f} s ({len(reached)}/2 seeds)" if reached else "not reached"
        )
        assert row["time to target"] == expected_cell

    assert [r["run"] for r in table(text, "Table 2")] == ["SGD", "SGD + batch norm"]
    assert table(text, "Table 2")[1]["test accuracy % (mean ± std, min–max)"] == "missing"

    with result.tables["results"].open() as fh:
        by_config = {row["report_run"]: row for row in csv.DictReader(fh)}
    assert set(by_config) == {"sgd", "adam"}
    sgd_acc = [metrics(dirs["sgd", s])["test"]["accuracy"] for s in (0, 1)]
    assert float(by_config["sgd"]["test_accuracy_mean"]) == pytest.approx(statistics.fmean(sgd_acc), abs=1e-4)
    assert float(by_config["sgd"]["test_accuracy_std"]) == pytest.approx(statistics.stdev(sgd_acc), abs=1e-4)
    assert by_config["sgd"]["seeds"] == "0 1" and by_config["sgd"]["params"] == "799078"


@pytest.mark.slow
def test_missing_runs_are_listed_with_commands_that_train_them(outputs):
    out, dirs = outputs
    text = build_report(report_cfg(out)).markdown.read_text()
    listed = dict(re.findall(r"^- (.+?): `(cnnlab-train .+)`$", text, flags=re.M))
    assert set(listed) == {"SGD, seed 2", "Adam, seed 2", "SGD + batch norm, seeds 0, 1, 2"}
    # the listed command trains into the directory beside the seeds that exist
    args = list(shlex.split(listed["SGD, seed 2"])[1:])
    assert args[-1] == "seed=2"
    assert run_dir_for(to_plain(compose_config("train", *args))) == dirs["sgd", 0].parent / "seed2"
    assert shlex.split(listed["SGD + batch norm, seeds 0, 1, 2"])[1:3] == ["-m", "+experiment/report=sgd_bn"]
    assert "**Incomplete:** 5 expected runs are missing" in text


@pytest.mark.slow
def test_html_is_self_contained_and_embeds_every_figure(outputs):
    out, _ = outputs
    result = build_report(report_cfg(out))
    text, page = result.markdown.read_text(), result.html.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert {Path(link).name for link in links} == {
        "curves_optimizers.png",
        "curves_batch_norm.png",
        "confusion_sgd_seed0.png",
        "confusion_adam_seed0.png",
    }
    embedded = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([^"]+)"', page)
    assert [base64.b64decode(e) for e in embedded] == [(result.report_dir / link).read_bytes() for link in links]
    assert "figures/" not in page and "<table>" in page and '<h2 id="runs-not-in-the-tables">' in page
    assert (result.report_dir / links[2]).read_bytes() == (out / "runs").joinpath(
        next(
            p
            for p in (out / "runs").rglob("confusion_matrix.png")
            if "/sgd/" in p.as_posix() and p.parent.name == "seed0"
        )
    ).read_bytes()


@pytest.mark.slow
def test_a_run_trained_without_figures_is_shown_with_a_line_instead_of_its_confusion_matrix(outputs):
    out, dirs = outputs
    recorded = metrics(dirs["adam", 0])  # as trainer.figures=false leaves a run: recorded so, no figure drawn
    recorded["config"]["trainer"]["figures"] = False
    (dirs["adam", 0] / "metrics.json").write_text(json.dumps(recorded))
    (dirs["adam", 0] / "confusion_matrix.png").unlink()
    text = build_report(report_cfg(out)).markdown.read_text()
    adam, sgd = (
        section(text, "Per-run results").split(f"### {label}: ", 1)[1].split("\n### ")[0] for label in ("Adam", "SGD")
    )
    assert "No confusion-matrix figure: the run was trained with `trainer.figures=false`." in adam
    assert "trainer.figures" not in sgd and "confusion_sgd_seed0.png" in sgd


@pytest.mark.slow
def test_best_model_is_chosen_by_validation_accuracy_not_test_accuracy(outputs):
    out, dirs = outputs
    # SGD gets the best validation accuracy but the worst test accuracy, seed 1 being its best seed
    for seed, val in ((0, 99.0), (1, 99.5)):
        m = metrics(dirs["sgd", seed])
        (dirs["sgd", seed] / "metrics.json").write_text(
            json.dumps({**m, "final_val_accuracy": val, "test": {**m["test"], "accuracy": 1.0}})
        )
    result = build_report(report_cfg(out))
    assert (result.report_dir / "best_model.pt").read_bytes() == (dirs["sgd", 1] / "checkpoint.pt").read_bytes()
    assert f"best:   SGD seed 1 -> {result.report_dir / 'best_model.pt'}" in result.lines()
    assert "**SGD** (`" in result.markdown.read_text().split("## Best configuration")[1]


@pytest.mark.slow
def test_a_best_checkpoint_that_does_not_load_as_weights_is_never_published(outputs, tmp_path):
    out, dirs = outputs
    for seed, val in ((0, 99.0), (1, 99.5)):  # SGD seed 1 is the best by validation accuracy ...
        m = metrics(dirs["sgd", seed])
        (dirs["sgd", seed] / "metrics.json").write_text(json.dumps({**m, "final_val_accuracy": val}))
    marker = tmp_path / "pwned"  # ... but its checkpoint is a crafted pickle
    torch.save({"model": CreatesFile(marker), "config": {}}, dirs["sgd", 1] / "checkpoint.pt")
    result = build_report(report_cfg(out))
    assert not marker.exists()
    (best_line,) = [line for line in result.lines() if line.startswith("best:   Adam seed ")]
    best = dirs["adam", int(best_line.split(" ")[-3])] / "checkpoint.pt"
    assert (result.report_dir / "best_model.pt").read_bytes() == best.read_bytes()


@pytest.mark.slow
def test_non_finite_or_missing_numbers_make_a_run_failed_with_the_reason(outputs):
    out, dirs = outputs
    m = metrics(dirs["adam", 1])
    (dirs["adam", 1] / "metrics.json").write_text(json.dumps({**m, "test": {**m["test"], "accuracy": float("nan")}}))
    fabricate(dirs["sgd", 0], dirs["sgd", 0].parent / "seed2", seed=2, train_time_s=float("inf"))
    result = build_report(report_cfg(out))
    text = result.markdown.read_text()
    assert "- Adam, seed 1: **failed** (finished but its test accuracy is nan)" in text
    assert "- SGD, seed 2: **failed** (finished but its training time is inf)" in text
    rows = table(text, "Table 1")
    assert rows[0]["n"] == "2 (+1 failed)" and rows[1]["n"] == "1 (+1 failed)"
    assert "nan" not in result.tables["results"].read_text().lower() and "nan" not in "".join(map(str, rows)).lower()


@pytest.mark.slow
def test_diverged_and_failed_runs_are_listed_not_averaged(outputs):
    out, dirs = outputs
    fabricate(
        dirs["adam", 0], dirs["adam", 0].parent / "seed2", seed=2, status="diverged", test=None, diverged_at_epoch=1
    )
    sgd_bn = run_dir_for(to_plain(train_cfg(out, "+experiment/report=sgd_bn", "seed=0")))
    fabricate(dirs["sgd", 0], sgd_bn, status="failed", test=None, error="RuntimeError: out of memory")
    (fabricate(dirs["sgd", 0], dirs["sgd", 0].parent / "seed2", seed=2) / "checkpoint.pt").unlink()
    text = build_report(report_cfg(out)).markdown.read_text()

    adam = table(text, "Table 1")[1]
    acc = [metrics(dirs["adam", s])["test"]["accuracy"] for s in (0, 1)]
    assert adam["n"] == "2 (+1 diverged)" and adam["test accuracy % (mean ± std, min–max)"].startswith(
        f"{statistics.fmean(acc):.2f} ±"
    )
    assert table(text, "Table 2")[1]["test accuracy % (mean ± std, min–max)"] == "failed"
    assert "- Adam, seed 2: **diverged** (at epoch 1)" in text
    assert "- SGD + batch norm, seed 0: **failed** (RuntimeError: out of memory)" in text
    assert (
        "- SGD, seed 2: **failed** (finished but lacks checkpoint.pt)" in text
        and table(text, "Table 1")[0]["n"] == "2 (+1 failed)"
    )


@pytest.mark.slow
def test_lr_sensitivity_appears_when_other_learning_rates_exist(outputs):
    out, dirs = outputs
    assert "Learning-rate sensitivity" not in build_report(report_cfg(out)).markdown.read_text()
    for opt, acc in (("sgd", 55.5), ("adam", 66.6)):
        cfg = to_plain(train_cfg(out, f"+experiment/report={opt}", "optimizer.lr=0.01", "seed=0"))
        m = metrics(dirs[opt, 0])
        fabricate(dirs[opt, 0], run_dir_for(cfg), config=cfg, test={**m["test"], "accuracy": acc})
    result = build_report(report_cfg(out))
    rows = table(result.markdown.read_text(), "Learning-rate sensitivity")
    assert [(r["optimizer"], r["lr 0.01"]) for r in rows] == [("SGD", "55.50"), ("Adam", "66.60")]
    assert (result.report_dir / "figures" / "lr_sensitivity.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_rerunning_without_new_runs_rebuilds_no_figure(outputs):
    out, _ = outputs
    first = build_report(report_cfg(out))
    figures = {p: p.stat().st_mtime_ns for p in (first.report_dir / "figures").glob("*.png")}
    assert figures
    second = build_report(report_cfg(out))
    assert {p: p.stat().st_mtime_ns for p in figures} == figures
    strip = lambda text: text.split("\n", 3)[3]  # noqa: E731 (the generated-at line differs)
    assert strip(second.markdown.read_text()) == strip(first.markdown.read_text())


def test_lr_sweep_is_five_log_spaced_rates_per_optimizer():
    params = compose_config("train", "experiment=lr_sweep", return_hydra_config=True).hydra.sweeper.params
    lrs = [float(v) for v in params["optimizer.lr"].split(",")]
    assert len(lrs) == 5 and lrs[0] == 1e-4 and lrs[-1] == 0.1
    assert [b / a for a, b in zip(lrs, lrs[1:])] == pytest.approx([10**0.75] * 4, rel=0.01)
    assert params["+experiment/report"].split(",") == ["sgd", "momentum", "rmsprop", "adam"]


# Tiny analysis options (few iterations, two occlusion images) on the tiny runs; sgd_bn has no run, so it is skipped.
TINY_ANALYSES = [
    {"analysis": "filters", "run": "sgd", "options": {"layer": "conv1"}},
    {"analysis": "filters", "run": "adam", "options": {"layer": "conv2"}},
    {"analysis": "activations", "run": "adam", "options": {"layer": "conv2", "image": 0}},
    {"analysis": "occlusion", "run": "sgd", "options": {"sizes": [3, 14], "images": 2, "stride": 2}},
    {
        "analysis": "adversarial",
        "run": "adam",
        "options": {"mode": "untargeted", "adversarial_preset": {"iterations": 5}},
    },
    {
        "analysis": "adversarial",
        "run": "adam",
        "options": {"mode": "targeted", "adversarial_preset": {"targeted_iterations": 3}},
    },
    {"analysis": "occlusion", "run": "sgd_bn", "options": {"images": 1}},
]


def analyses_cfg(out, entries=TINY_ANALYSES):
    cfg = report_cfg(out, "analyses_enabled=true", "analysis_device=cpu", "robustness.enabled=false")
    cfg.analyses = entries
    return cfg


def section(text, title):
    return text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def summaries(run_dir):
    return {p: p.stat().st_mtime_ns for p in (run_dir / "analysis").rglob("summary.json")}


@pytest.mark.slow
def test_analyses_section_shows_every_figure_with_its_numbers_and_the_html_embeds_them(outputs):
    out, dirs = outputs
    result = build_report(analyses_cfg(out))
    text, page = result.markdown.read_text(), result.html.read_text()
    analyses = section(text, "Analyses")
    assert "6 of 7 analyses shown, 1 skipped (run missing), 0 failed" in analyses

    # every figure each analysis wrote sits in the report folder, identical, linked relatively and embedded in the HTML
    written = {p for key in (("sgd", 0), ("adam", 0)) for p in (dirs[key] / "analysis").rglob("*.png")}
    assert len(written) == 1 + 1 + 1 + 2 + 2 + 1
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", analyses)
    by_name = {(p.parent.name, p.name): p for p in written}
    assert sorted((Path(link).parent.name, Path(link).name) for link in links) == sorted(by_name)
    for link in links:
        assert (result.report_dir / link).read_bytes() == by_name[Path(link).parent.name, Path(link).name].read_bytes()
    embedded = [base64.b64decode(e) for e in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]
    all_links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert embedded == [(result.report_dir / link).read_bytes() for link in all_links]
    assert '<h2 id="analyses">' in page

    # key numbers come from each analysis's summary.json
    occlusion = json.loads(next((dirs["sgd", 0] / "analysis" / "occlusion").rglob("summary.json")).read_text())
    rows = table(analyses.split("### Occlusion", 1)[1], "")
    assert [r["p(actual), unoccluded"] for r in rows] == [
        f"{i['unoccluded_probability']:.4f}" for i in occlusion["images"]
    ]
    targeted = json.loads((dirs["adam", 0] / "analysis/adversarial/targeted-input_domain/summary.json").read_text())
    assert f"Success rate {targeted['success_rate']:.1%}" in analyses
    assert f"mean MSE to the source image {targeted['mean_mse_to_source']:.4f}" in analyses
    untargeted = json.loads((dirs["adam", 0] / "analysis/adversarial/untargeted-input_domain/summary.json").read_text())
    rows = table(analyses.split("### Untargeted adversarial images (input_domain preset): Adam, seed 0", 1)[1], "")
    assert [(r["target"], r["confidence"]) for r in rows] == [
        (r["target"], f"{r['confidence']:.1%}") for r in untargeted["table"]
    ]

    # the run without a finished seed is listed with the command that trains it
    skipped = analyses.split("### Occlusion", 2)[2]
    command = re.search(r"Train it with `(cnnlab-train .+?)`", skipped).group(1)
    assert shlex.split(command)[1] == "+experiment/report=sgd_bn" and shlex.split(command)[-1] == "seed=0"
    assert run_dir_for(to_plain(compose_config("train", *shlex.split(command)[1:]))).parent.name.startswith(
        "e1-lr0.001-bs64-n256"
    )


@pytest.mark.slow
def test_rebuilding_the_report_recomputes_no_analysis(outputs):
    out, dirs = outputs
    entries = [
        e for e in TINY_ANALYSES if e["options"].get("mode") != "targeted"
    ]  # its 90-panel figure is slow to draw
    first = build_report(analyses_cfg(out, entries))
    stamps = {**summaries(dirs["sgd", 0]), **summaries(dirs["adam", 0])}
    figures = {p: p.stat().st_mtime_ns for p in (first.report_dir / "figures" / "analyses").rglob("*.png")}
    assert len(stamps) == 5 and len(figures) == 7
    second = build_report(analyses_cfg(out, entries))
    assert {**summaries(dirs["sgd", 0]), **summaries(dirs["adam", 0])} == stamps
    assert {p: p.stat().st_mtime_ns for p in figures} == figures
    strip = lambda text: text.split("\n", 3)[3]  # noqa: E731 (the generated-at line differs)
    assert strip(second.markdown.read_text()) == strip(first.markdown.read_text())


@pytest.mark.slow
def test_the_command_writes_the_report_lists_a_failing_analysis_and_exits_1(outputs):
    """`cnnlab-report` as a user runs it (its exit 0 on a report without failures: test_report_fashion.py)."""
    out, dirs = outputs
    entries = "analyses=[{analysis:activations,run:adam,options:{image:99999}},{analysis:filters,run:sgd}]"
    # the robustness section (test_robustness's) would attack every run: minutes; the optimizer comparison's composes
    # its 32 configurations (test_comparison's)
    args = ("tables.optimizers=[sgd,adam]", TRAIN_OVERRIDES, "robustness.enabled=false", "comparison.enabled=false")
    proc = run_command("report", f"paths.output_dir={out}", *args, entries)
    assert proc.returncode == 1
    report = out / "report" / "REPORT.md"
    assert f"report: {report}" in proc.stdout
    assert (out / "report" / "report.html").is_file() and (out / "report" / "best_model.pt").is_file()
    assert (
        proc.stderr.strip().splitlines()[-1] == f"cnnlab-report: error: Analyses: 1 of 2 analyses failed; see {report}"
    )
    assert "analyses: 1 shown, 0 skipped (run missing), 1 failed" in proc.stdout
    text = report.read_text()
    assert "**Failed:** image=99999 is out of range: the test set has images 0..9999" in text
    assert re.search(r"!\[[^\]]*\]\(figures/analyses/sgd-seed0/filters/conv1/conv1\.png\)", text)
    assert "## Table 1" in text and (out / "report" / "report.html").is_file()


@pytest.mark.slow
@pytest.mark.parametrize(
    "entry, message",
    [
        ({"analysis": "saliency", "run": "sgd"}, "analyses[0].analysis='saliency' is unknown; choose one of: filters,"),
        (
            {"analysis": "activations", "run": "adam", "options": {"layers": ["conv1"]}},
            "analyses[0].options: layers is not an option of activations; allowed:",
        ),
        ({"analysis": "filters", "run": "lbfgs"}, "analyses[0].run='lbfgs' is not a run of `runs`; defined: sgd,"),
    ],
)
def test_bad_analysis_entries_are_config_errors_before_anything_is_written(outputs, entry, message):
    out, _ = outputs
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_report(analyses_cfg(out, [entry]))
    assert not (out / "report").exists() and not list((out / "runs").rglob("analysis"))


@pytest.mark.slow
def test_turned_off_analyses_compute_nothing_and_leave_no_section(outputs):
    out, _ = outputs
    text = build_report(report_cfg(out)).markdown.read_text()
    assert "## Analyses" not in text and not list((out / "runs").rglob("analysis"))
    with pytest.raises(ConfigError, match="analysis_device='gpu' is not allowed"):
        build_report(report_cfg(out, "analysis_device=gpu"))


def test_the_default_entries_are_the_report_s_analyses_with_real_option_names():
    cfg = compose_config("report")
    entries = parse_entries(to_plain(cfg.analyses), to_plain(cfg.runs))
    assert cfg.analyses_enabled is True
    assert [(e.run, title(e)) for e in entries] == [
        ("sgd_bn", "Filters of conv1"),
        ("sgd_bn", "Filters of conv2, input channel 0"),
        ("adam_bn", "Filters of conv1"),
        ("adam_bn", "Filters of conv2, input channel 0"),
        ("adam_bn", "Activation maps of conv1, test image 0"),
        ("adam_bn", "Activation maps of conv2, test image 0"),
        ("sgd_bn", "Occlusion, patch sizes 1, 3, 5, 7, 14 (stride 1, first 10 test images)"),
        ("adam_bn", "Untargeted adversarial images (input_domain preset)"),
        ("adam_bn", "Targeted adversarial images (input_domain preset)"),
    ]


def test_an_entry_s_command_composes_to_the_settings_the_report_computes_with():
    runs = to_plain(compose_config("report").runs)
    odd = {"analysis": "adversarial", "run": "adam", "options": {"adversarial_preset": "report", "seed": 3}}
    for entry in parse_entries([*TINY_ANALYSES, odd], runs):
        args = shlex.split(entry.command(Path("/runs/adam/seed0")))
        assert args[:2] == [f"cnnlab-{entry.analysis}", "run=/runs/adam/seed0"]
        composed = to_plain(compose_config(entry.analysis, *args[1:]))
        assert {k: v for k, v in composed.items() if k not in NOT_OPTIONS} == entry.settings


def test_analysis_statuses_are_their_plain_words_in_text_and_json():
    assert [str(s) for s in AnalysisStatus] == ["done", "skipped", "failed"]
    assert AnalysisStatus.FAILED == "failed" and f"{AnalysisStatus.SKIPPED}" == "skipped"
    assert json.loads(json.dumps({"status": AnalysisStatus.DONE})) == {"status": "done"}


def test_an_accuracys_interval_over_seeds_stays_within_0_and_100_percent(tmp_path):
    """Five seeds with one far below the others (as SGD + batch norm gave at a tuned lr near the edge of stability),
    and two far apart: the t-interval of the mean reaches past 100% and below 0%, and the summaries cut it there."""

    def runs(accuracies):
        metrics = lambda seed, a: {"status": "finished", "seed": seed, "test": {"accuracy": a}}  # noqa: E731
        return [
            Run(tmp_path / f"seed{seed}", {**metrics(seed, a), "final_val_accuracy": a, "train_time_s": 1.0})
            for seed, a in enumerate(accuracies)
        ]

    for accuracies in ([99.25, 99.20, 98.95, 98.83, 96.40], [2.0, 60.0]):
        mean, std, n = statistics.fmean(accuracies), statistics.stdev(accuracies), len(accuracies)
        half = scipy_stats.t.ppf(0.975, n - 1) * std / n**0.5
        assert mean + half > 100 or mean - half < 0
        result = summarize_config("c", runs(accuracies), target=98, confidence=0.95)
        for summary in (result.test_accuracy, result.val_accuracy):
            assert summary.ci == pytest.approx((max(mean - half, 0.0), min(mean + half, 100.0)))
        assert result.test_accuracy.contains(100.0) and not result.test_accuracy.contains(100.01)
        assert result.train_time.ci == (1.0, 1.0)  # equal times: a zero-width interval, not cut to [0, 100]


@pytest.mark.slow
def test_the_interval_column_names_its_confidence_level(outputs):
    out, _ = outputs
    text = build_report(report_cfg(out, "confidence=0.9")).markdown.read_text()
    for heading in ("Table 1", "Table 2"):
        rows = table(text, heading)
        assert "90% interval" in rows[0] and "95% interval" not in rows[0]
    assert "the 90% interval is the Student-t interval" in text


def broken_section(context):
    """A feature's section that fails (its input cannot be read): the report shows it as failed, writes the rest."""
    raise RuntimeError("the feature's file is unreadable")


def test_a_failing_section_is_shown_failed_and_the_rest_of_the_report_is_written(tmp_path):
    cfg = compose_config("report", *TABLES_ONLY, output_dir=tmp_path)
    cfg.sections = ["tests.test_report.broken_section", *cfg.sections]
    result = build_report(cfg)
    assert [(s.title, s.error) for s in result.failed] == [
        ("broken_section", "RuntimeError: the feature's file is unreadable")
    ]
    text = result.markdown.read_text()
    assert "## broken_section\n\n**Failed:** RuntimeError: the feature's file is unreadable\n" in text
    assert "## Table 1" in text and "## Runs not in the tables" in text and result.html.is_file()


def test_a_section_that_is_not_an_importable_function_is_a_config_error_before_anything_is_written(tmp_path):
    cfg = compose_config("report", "sections=[cnnlab.training.report_section.no_such_section]", output_dir=tmp_path)
    with pytest.raises(ConfigError, match=re.escape("sections[0]='cnnlab.training.report_section.no_such_section' is")):
        build_report(cfg)
    assert not any(tmp_path.iterdir())


def test_the_html_shows_markup_in_labels_as_text(tmp_path):
    label = "<script>alert(1)</script>"
    cfg = compose_config("report", f"runs.sgd.label='{label}'", *TABLES_ONLY, output_dir=tmp_path)
    page = build_report(cfg).html.read_text()
    assert label not in page and "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>" in page
