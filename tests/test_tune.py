"""`cnnlab-tune`: settings checked before anything is written, a real smoke study (trial states, pruned runs, no test
pass, nothing re-run), two worker processes sharing one budget, and the report's Tuned comparison built from a
small study and its seed runs."""

from __future__ import annotations

import json
import logging
import shutil
import statistics
import subprocess
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from cnnlab.cli.entry import check_command_line
from cnnlab.config import to_plain
from cnnlab.errors import ConfigError
from cnnlab.reporting import build_report
from cnnlab.runs.layout import run_dir_for
from cnnlab.tuning import check_tune, tune, tune_settings
from cnnlab.tuning.space import parse_space
from cnnlab.tuning.storage import parse_storage
from cnnlab.tuning.study import next_trial, open_study
from tests.helpers import TINY, TRAIN_OVERRIDES, command_argv, compose_config, invoke, table

# 4 trials of 2 epochs; the median rule may prune from the first epoch once one trial finished. With sampler seed 0
# the random start draws lr 0.0139, 0.78 (Adam diverges), 0.0179 and 0.0083: the last two fall below the median.
SMOKE = (*TINY, "trainer.epochs=2", "tune.trials=4", "tune.pruner.n_startup_trials=1", "tune.pruner.n_warmup_steps=0")


def tune_cfg(output_dir: Path, *overrides: str):
    return compose_config("tune", *overrides, output_dir=output_dir)


def load(output_dir: Path, study_name: str, storage: str | None = None) -> optuna.Study:
    url = storage or f"sqlite:///{output_dir}/tune/optuna.db"
    if url.startswith("journal:"):
        backend = optuna.storages.journal.JournalFileBackend(url.removeprefix("journal:"))
        url = optuna.storages.JournalStorage(backend)
    return optuna.load_study(study_name=study_name, storage=url)


def files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


# --- settings ------------------------------------------------------------------------------------------------------


def test_the_space_tunes_optimizer_settings_and_torch_arguments(tmp_path):
    adam = tune_cfg(tmp_path, "+experiment/report=adam")
    space = parse_space({"optimizer": {"lr": {"low": 1e-4, "high": 1.0, "log": True}}}, adam)
    assert [(d.name, d.low, d.high, d.log) for d in space.dimensions] == [("optimizer.lr", 1e-4, 1.0, True)]
    assert space.overrides(adam, {"optimizer.lr": 0.0123}) == ["optimizer.lr=0.0123"]
    # Adam's betas are not in conf/optimizer/adam.yaml: torch's default fills the item that is not tuned
    betas = parse_space({"optimizer": {"betas": [{"low": 0.8, "high": 0.95}, 0.999]}}, adam)
    applied = betas.apply(adam, {"optimizer.betas.0": 0.9})
    assert list(applied.optimizer.betas) == [0.9, 0.999]
    assert betas.overrides(adam, {"optimizer.betas.0": 0.9}) == ["+optimizer.betas=[0.9,0.999]"]
    momentum = tune_cfg(tmp_path, "+experiment/report=momentum", "tune.space.optimizer.momentum={low:0.5,high:0.99}")
    both = parse_space(to_plain(momentum.tune.space), momentum)  # conf/tune.yaml's lr and the opt-in momentum
    assert both.keys == ["optimizer.lr", "optimizer.momentum"]


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"optimizer": {"momentum": {"low": 0.5, "high": 0.9}}}, "tune.space.optimizer.momentum is not a setting"),
        ({"model": {"batch_norm": {"low": 0, "high": 1}}}, "tune.space.model.batch_norm is not a setting"),
        ({"optimizer": {"lr": {"low": 0.1, "high": 0.1}}}, "is empty"),
        ({"optimizer": {"lr": {"low": 1.0, "high": 0.1}}}, "is inverted"),
        ({"optimizer": {"lr": {"low": 0.0, "high": 0.1, "log": True}}}, "a log range needs low > 0"),
        ({"optimizer": {"lr": {"low": 1e-4, "hi": 0.1}}}, "unknown range key hi"),
        ({"optimizer": {"betas": [{"low": 0.9, "high": 1.5}, 0.999]}}, "torch refuses these settings"),
        ({"optimizer": {"betas": [0.9, 0.999]}}, "no range among its items"),
        ({}, "must name at least one setting"),
    ],
)
def test_bad_spaces_are_config_errors(tmp_path, space, message):
    with pytest.raises(ConfigError, match=message):
        parse_space(space, tune_cfg(tmp_path, "+experiment/report=adam"))


def test_the_study_name_leaves_out_the_tuned_lr_but_not_what_changes_the_trials(tmp_path):
    def name(*overrides):
        return tune_settings(tune_cfg(tmp_path, "+experiment/report=sgd", *overrides)).study_name

    base = name()
    assert base.startswith("mnist/sgd/e5-bs64-") and "lr" not in base
    assert name("optimizer.lr=0.5") == base  # the lr is what is tuned
    assert name("tune.trials=20", "tune.n_jobs=2", "tune.seeds=[0]") == base  # budget and workers: the same study
    for other in (
        "trainer.epochs=3",
        "seed=0",
        "tune.sampler_seed=1",
        "tune.pruner.name=none",
        "model.batch_norm=true",
    ):
        assert name(other) != base, other


def test_storage_urls(tmp_path):
    assert parse_storage(f"journal:{tmp_path}/j.log").path == tmp_path / "j.log"
    assert parse_storage("sqlite:///rel/optuna.db").path == Path("rel/optuna.db")
    assert parse_storage("postgresql://u:secret@host/db").shown == "postgresql://u:***@host/db"
    for bad in ("sqlite:///:memory:", "not a url", "journal:"):
        with pytest.raises(ConfigError, match="tune.storage"):
            parse_storage(bad)


BAD_INPUT = {
    "unknown-key": (["+tune.space.optimizer.foo={low:1,high:2}"], "tune.space.optimizer.foo is not a setting"),
    "empty-range": (["tune.space.optimizer.lr.low=0.1", "tune.space.optimizer.lr.high=0.1"], "is empty"),
    "inverted-range": (["tune.space.optimizer.lr.low=1", "tune.space.optimizer.lr.high=0.1"], "is inverted"),
    "not-a-database": (["tune.storage=sqlite:///{junk}"], "cannot be opened (file is not a database)"),
    "under-a-file": (["tune.storage=sqlite:///{junk}/optuna.db"], "junk.db is a file"),
    "unknown-backend": (["tune.storage=nosuchdb://host/db"], "'nosuchdb' is not a database SQLAlchemy knows"),
    "budget": (["tune.trials=0"], "tune.trials=0 must be a positive integer"),
    "not-this-optimizer": (["tune.space.optimizer.momentum={low:0.5,high:0.9}"], "optimizer.momentum is not a setting"),
    "nothing-tuned": (["tune.space.optimizer.lr=null"], "tunes nothing"),
}


def bad_args(tmp_path: Path, case: str) -> tuple[Path, Path, list[str], str]:
    junk = tmp_path / "outputs" / "junk.db"
    junk.parent.mkdir(parents=True)
    junk.write_text("not a database\n")
    args, message = BAD_INPUT[case]
    return junk, junk.parent, [a.replace("{junk}", str(junk)) for a in args], message


@pytest.mark.parametrize("case", ["unknown-key", "not-a-database"])  # Hydra's composition; our storage check
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, case):
    """Through the command's real entry point, in this process (test_bad_inputs.py runs one per command in its own)."""
    junk, out, args, message = bad_args(tmp_path, case)
    status, stderr = invoke("tune", *TINY, f"paths.output_dir={out}", *args)
    assert status == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnnlab-tune: error: "), stderr
    assert message in lines[0]
    assert files(out) == [junk] and junk.read_text() == "not a database\n"


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_every_bad_input_is_caught_where_the_command_line_is_checked(tmp_path, case):
    """What the command runs before Hydra writes anything (the processes above show the exit and the one line)."""
    junk, out, args, message = bad_args(tmp_path, case)
    with pytest.raises(ConfigError) as caught:
        check_command_line("cnnlab-tune", "tune", [*TINY, f"paths.output_dir={out}", *args], check_tune)
    assert message in str(caught.value)
    assert files(out) == [junk]


# --- a smoke study -------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_smoke_study_prunes_never_tests_and_spends_its_budget_once(tmp_path, caplog):
    out = tmp_path / "outputs"
    args = (*SMOKE, "tune.seeds=[]", f"paths.output_dir={out}")
    status, stderr = invoke("tune", *args)  # in this process (the two-worker test below starts the command)
    assert status is None, stderr
    name = tune_settings(tune_cfg(out, *SMOKE)).study_name
    trials = load(out, name).get_trials()
    states = [t.state for t in trials]
    assert len(trials) == 4 and set(states) <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert TrialState.PRUNED in states and TrialState.COMPLETE in states
    for t in trials:
        run_dir = Path(t.user_attrs["run_dir"])
        # an ordinary run directory: the one cnnlab-train would use for this lr (under tune.runs_dir)
        train_cfg = compose_config("train", *TINY, "trainer.epochs=2", f"optimizer.lr={t.params['optimizer.lr']!r}")
        assert run_dir == run_dir_for({**to_plain(train_cfg), "paths": {"runs_dir": str(out / "tune" / "runs")}})
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert "test" not in metrics and not (run_dir / "classification_report.txt").exists()
        assert [h["val_accuracy"] for h in metrics["history"]] == list(t.intermediate_values.values())
        if t.state == TrialState.PRUNED:
            assert metrics["status"] == "pruned" and len(metrics["history"]) == 1
        else:
            assert metrics["status"] in ("trained", "diverged")
            assert t.value == metrics["history"][-1]["val_accuracy"]
    assert not (out / "runs").exists()  # no seed runs asked for, and trials stay out of paths.runs_dir

    # again (in this process): the budget is spent, so nothing is trained again
    stamps = {p: p.stat().st_mtime_ns for p in (out / "tune" / "runs").rglob("metrics.json")}
    with caplog.at_level(logging.INFO, logger="cnnlab"):
        tune(tune_cfg(out, *SMOKE, "tune.seeds=[]"))
    assert any("4 of 4 trials spent" in r.getMessage() for r in caplog.records)
    assert len(stamps) == 4 and {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert [(t.number, t.state) for t in load(out, name).get_trials()] == [(t.number, t.state) for t in trials]

    # reproducible: the same study in a fresh storage (in this process) draws the same values to the same outcomes
    fresh = tmp_path / "fresh"
    tune(tune_cfg(fresh, *SMOKE, "tune.seeds=[]"))
    redo = load(fresh, name).get_trials()
    assert [(t.params, t.state, t.value) for t in redo] == [(t.params, t.state, t.value) for t in trials]


@pytest.mark.slow
def test_two_worker_processes_spend_exactly_the_budget(tmp_path):
    out = tmp_path / "outputs"
    journal = f"journal:{out}/tune/optuna.journal"
    args = (*TINY, "trainer.epochs=2", "tune.trials=6", "tune.seeds=[]", f"tune.storage={journal}")
    argv = command_argv("tune", *args, f"paths.output_dir={out}")
    workers = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [err for _, err in outputs]
    name = tune_settings(tune_cfg(out, *args)).study_name
    trials = load(out, name, journal).get_trials()
    assert sorted(t.number for t in trials) == list(range(6))
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert len({t.params["optimizer.lr"] for t in trials}) == 6  # no trial drawn twice
    assert {t.user_attrs["worker"]["pid"] for t in trials} == {w.pid for w in workers}  # both took part


def test_a_trial_of_a_killed_worker_is_failed_and_retried_with_its_values(tmp_path):
    """A worker killed hard leaves its trial running; the next worker marks it failed (the process is gone) and asks
    again: the budget is not spent twice, and the retry draws the same values (the same history and seed)."""
    out = tmp_path / "outputs"
    cfg = tune_cfg(out, *TINY, "tune.trials=1", "tune.seeds=[]")
    settings = tune_settings(cfg)
    study = open_study(settings)
    abandoned = next_trial(study, settings)
    dead = subprocess.Popen(["true"])
    dead.wait()
    abandoned.set_user_attr("worker", {"host": abandoned.user_attrs["worker"]["host"], "pid": dead.pid, "start": "0"})
    retried = next_trial(study, settings)
    assert retried is not None and retried.params == abandoned.params
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.RUNNING]
    assert next_trial(study, settings) is None  # the budget of one is spent by the retry


# --- the report's section ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_tuned_comparison_in_the_report(tmp_path):
    out = tmp_path / "outputs"
    tune_args = ("tune.trials=2", "tune.seeds=[0,1]")
    result = tune(tune_cfg(out, *TINY, "+experiment/report=sgd", *tune_args))
    assert [r.status for r in result.seed_runs] == ["finished", "finished"]
    best = result.state.best
    # the seed runs are cnnlab-train's own runs of the tuned setting
    lr = best.params["optimizer.lr"]
    train_cfg = compose_config(
        "train", *TINY, "+experiment/report=sgd", f"optimizer.lr={lr!r}", "seed=1", output_dir=out
    )
    assert result.seed_runs[1].run_dir == run_dir_for(to_plain(train_cfg))
    # Table 1's untuned run: seed 0's run copied to the untuned configuration's directory, with its own accuracy
    untuned = run_dir_for(to_plain(compose_config("train", *TINY, "+experiment/report=sgd", "seed=0", output_dir=out)))
    shutil.copytree(result.seed_runs[0].run_dir, untuned)
    metrics = json.loads((untuned / "metrics.json").read_text())
    untuned_accuracy = metrics["test"]["accuracy"] = 12.5
    (untuned / "metrics.json").write_text(json.dumps(metrics))
    # and a seed the tuned setting was not trained on, which the comparison leaves out (Table 1 shows it)
    other_seed = shutil.copytree(untuned, untuned.parent / "seed7")
    metrics.update(seed=7, test={**metrics["test"], "accuracy": 50.0})
    (other_seed / "metrics.json").write_text(json.dumps(metrics))

    overrides = "tuning.tune_overrides=[" + ",".join(f"'{o}'" for o in tune_args) + "]"
    report = compose_config(
        "report",
        "seeds=[0,7]",
        TRAIN_OVERRIDES,
        overrides,
        "analyses_enabled=false",
        "comparison.enabled=false",
        output_dir=out,
    )
    text = build_report(report).markdown.read_text()
    rows = {row["run"]: row for row in table(text, "Tuned comparison")}
    tuned = [r.metrics["test"]["accuracy"] for r in result.seed_runs]
    sgd = rows["SGD"]
    assert sgd["trials (budget)"].startswith("2 of 2")
    assert sgd["best setting"] == f"lr {lr:.4g}" and sgd["its validation accuracy %"] == f"{best.value:.2f}"
    assert sgd["n"] == "2 of 2"
    assert sgd["tuned: test accuracy % (mean ± std, min–max)"].startswith(f"{statistics.fmean(tuned):.2f} ± ")
    assert sgd["untuned: test accuracy % (same seeds)"] == f"{untuned_accuracy:.2f} (n = 1)"  # seed 0, not 7
    assert sgd["difference (points)"] == f"{statistics.fmean(tuned) - untuned_accuracy:+.2f}"
    assert table(text, "Table 1")[0]["n"] == "2"  # Table 1 itself shows both seeds
    assert rows["Adam"]["trials (budget)"] == "no study (budget 2)"
    section = text.split("## Tuned comparison", 1)[1].split("\n## ", 1)[0]
    assert "cnnlab-tune +experiment/report=adam debug=smoke" in section and "tune.trials=2" in section
    assert "the test set is never read while tuning" in section
    for figure in ("tuning_history.png", "tuning_slice_sgd.png"):
        assert f"(figures/{figure})" in section and (out / "report" / "figures" / figure).is_file()

    # without an untuned run on the tuned seeds, the comparison falls back to all of Table 1's seeds
    shutil.rmtree(untuned)
    text = build_report(report).markdown.read_text()
    sgd = {row["run"]: row for row in table(text, "Tuned comparison")}["SGD"]
    assert sgd["untuned: test accuracy % (same seeds)"] == "50.00 (n = 1)"

    # a missing seed run of the tuned setting is listed with the cnnlab-train command that trains it
    (result.seed_runs[1].run_dir / "metrics.json").unlink()
    text = build_report(report).markdown.read_text()
    section = text.split("## Tuned comparison", 1)[1].split("\n## ", 1)[0]
    assert f"optimizer.lr={lr!r} seed=1`" in section and "lacks seed(s) 1" in section
