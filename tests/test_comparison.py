"""The optimizer comparison: validation during the epoch (trainer.eval_every), and the report's section checked
against an independent computation from the raw metrics and trials with plain numpy/scipy."""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from scipy import stats as scipy_stats

from cnnlab.config import to_plain
from cnnlab.reporting import build_report
from cnnlab.runs.checkpoint import load_checkpoint
from cnnlab.runs.layout import config_hash, run_dir_for
from cnnlab.training.runner import train
from cnnlab.tuning.runner import seed_config
from cnnlab.tuning.settings import tune_settings
from cnnlab.tuning.storage import open_storage
from tests.helpers import TINY, compose_config, run_command

WORKLOADS = {"mnist": [], "mnist_bn": ["model.batch_norm=true"]}
OPTIMIZERS = ["sgd", "adam", "rmsprop"]
SEEDS = [0, 1, 2, 3]
TARGETS = [90.0, 95.0]
STEPS, IMAGES = 10, 640  # per epoch, in the synthetic runs
WORKLOAD_NAMES = ["mnist", "mnist_bn", "fashion_mnist", "fashion_mnist_bn"]  # conf/report.yaml's comparison
ALL_OPTIMIZERS = ["sgd", "momentum", "rmsprop", "adam"]
FASHION_MNIST = Path(compose_config("train", "data=fashion_mnist").data.root) / "FashionMNIST" / "raw"


# --- trainer.eval_every on real runs ----------------------------------------------------------------------------------


def test_validation_during_the_epoch_changes_no_weight_and_records_each_step(make_cfg):
    """TINY: 256 images, 4 steps per epoch. Every step validates (on 100 images) at steps 1-3 (the 4th is the epoch's
    end). The test pass is left out: the weights it would test are compared directly."""
    settings = (*TINY, "data.val_size=100", "model.batch_norm=true", "trainer.epochs=2")
    plain = train(make_cfg(*settings), test=False)
    every = train(make_cfg(*settings, "trainer.eval_every=1"), test=False)
    assert plain.run_dir != every.run_dir
    a, b = (load_checkpoint(r.run_dir / "last.pt")["model"] for r in (plain, every))
    assert all(torch.equal(a[k], b[k]) for k in a)  # batch norm in eval mode: its statistics are untouched
    history = every.metrics["history"]
    assert [(h["step"], h["images_seen"]) for h in history] == [(4, 256), (8, 512)]
    points = [p for h in history for p in h["evals"]]
    assert [(p["step"], p["images_seen"]) for p in points] == [
        (1, 64),
        (2, 128),
        (3, 192),
        (5, 320),
        (6, 384),
        (7, 448),
    ]
    seconds = [p["train_seconds"] for p in points]
    assert seconds == sorted(seconds) and seconds[0] > 0
    assert history[0]["train_s"] < history[0]["epoch_time_s"]  # validation time is not training time
    assert [h["val_accuracy"] for h in plain.metrics["history"]] == [h["val_accuracy"] for h in history]
    assert "evals" not in plain.metrics["history"][0]


def test_a_fraction_of_an_epoch_rounds_up_to_steps(make_cfg):
    half = train(make_cfg(*TINY, "data.val_size=100", "trainer.eval_every=0.5"), test=False)
    assert [p["step"] for p in half.metrics["history"][0]["evals"]] == [2]
    whole = train(make_cfg(*TINY, "data.val_size=100", "trainer.eval_every=1.0"), test=False)
    assert whole.metrics["history"][0]["evals"] == []


@pytest.mark.parametrize(("group", "key", "value"), [("trainer", "eval_every", 2), ("data", "test_subset", 100)])
def test_runs_made_before_a_setting_existed_keep_their_directory(make_cfg, group, key, value):
    cfg = to_plain(make_cfg(*TINY, f"{group}.{key}=null"))
    without = {**cfg, group: {k: v for k, v in cfg[group].items() if k != key}}
    assert config_hash(cfg) == config_hash(without)
    assert config_hash(to_plain(make_cfg(*TINY, f"{group}.{key}={value}"))) != config_hash(cfg)


# --- the report's section against an independent computation -------------------------------------------------------


def _history(rng: np.random.Generator, ceiling: float) -> list[dict]:
    """Two epochs validated every 2 steps: accuracy rising towards `ceiling` with noise."""
    history, seconds = [], 0.0
    for epoch in (1, 2):
        evals = []
        for step in (2, 4, 6, 8):
            seconds += 0.5
            done = (epoch - 1) * STEPS + step
            acc = ceiling * (1 - math.exp(-done / 6)) + rng.normal(0, 0.5)
            evals.append(
                {"step": done, "images_seen": done * 64, "train_seconds": seconds, "val_loss": 0.1, "val_accuracy": acc}
            )
        seconds += 1.0
        acc = ceiling * (1 - math.exp(-epoch * STEPS / 6)) + rng.normal(0, 0.5)
        entry = {"epoch": epoch, "train_loss": 0.1, "val_loss": 0.1, "val_accuracy": acc, "epoch_time_s": 3.0}
        entry.update(train_s=3.0, images_per_s=200.0, step=epoch * STEPS, images_seen=epoch * IMAGES, evals=evals)
        history.append(entry)
    return history


def _write_run(cfg, history: list[dict], accuracy: float) -> dict:
    """A finished run's metrics.json where `cnnlab-train` would put `cfg`'s run."""
    plain = to_plain(cfg)
    metrics = {"status": "finished", "seed": cfg.seed, "device": "cpu", "history": history, "config": plain}
    metrics["test"] = {"accuracy": accuracy, "loss": 0.1}
    metrics |= {"final_val_accuracy": history[-1]["val_accuracy"], "best_val_accuracy": 99.0, "train_time_s": 6.0}
    run_dir = run_dir_for(plain)
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    (run_dir / "checkpoint.pt").touch()  # never loaded here: the report only checks that a finished run has one
    return metrics


def _write_runs(out: Path) -> dict[tuple[str, str, int], dict]:
    """Synthetic finished runs where `cnnlab-train experiment=comparison` would put them; their metrics by cell."""
    rng = np.random.default_rng(7)
    ceilings = {"sgd": 93.0, "adam": 99.0, "rmsprop": 97.0}
    runs = {}
    for (workload, args), optimizer, seed in itertools.product(WORKLOADS.items(), OPTIMIZERS, SEEDS):
        cfg = compose_config(
            "train", "experiment=comparison", *args, f"optimizer={optimizer}", f"seed={seed}", output_dir=out
        )
        history = _history(rng, ceilings[optimizer] + (1.0 if args else 0.0))
        runs[workload, optimizer, seed] = _write_run(
            cfg, history, float(history[-1]["val_accuracy"] + rng.normal(0, 0.3))
        )
    return runs


def _write_studies(out: Path) -> tuple[dict[tuple[str, str], list[float]], dict[tuple[str, str, int], dict]]:
    """A random-sampler study per cell, as cnnlab-tune names and stores it, holding complete trials of known values,
    and its best setting's runs on the study's seeds (the tuned runs)."""
    rng = np.random.default_rng(11)
    values, tuned = {}, {}
    dist = optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)
    for (workload, args), optimizer in itertools.product(WORKLOADS.items(), OPTIMIZERS):
        cfg = compose_config(
            "tune",
            "experiment=comparison",
            *args,
            f"optimizer={optimizer}",
            "tune.sampler=random",
            "tune.pruner.name=none",
            output_dir=out,
        )
        settings = tune_settings(cfg)
        study = optuna.create_study(
            storage=open_storage(settings.storage), study_name=settings.study_name, direction="maximize"
        )
        study.set_user_attr("sampler", "random")
        trials = [float(v) for v in rng.uniform(80, 99, size=5)]
        for lr, v in zip(np.geomspace(2e-3, 0.5, len(trials)), trials):  # never lr 0.001, the untuned runs'
            params = {"optimizer.lr": float(lr)}
            study.add_trial(optuna.trial.create_trial(params=params, distributions={"optimizer.lr": dist}, value=v))
        values[workload, optimizer] = trials
        best = {"optimizer.lr": study.best_trial.params["optimizer.lr"]}
        for seed in settings.seeds:
            history = _history(rng, 97.0 + rng.uniform(0, 2))
            tuned[workload, optimizer, seed] = _write_run(seed_config(cfg, settings, best, seed), history, 98.0)
    return values, tuned


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _first_images(metrics: dict, target: float) -> float:
    for h in metrics["history"]:
        for p in h["evals"]:
            if p["val_accuracy"] >= target:
                return p["images_seen"]
        if h["val_accuracy"] >= target:
            return h["images_seen"]
    return math.inf


@pytest.fixture(scope="module")
def comparison_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("comparison")
    runs = _write_runs(out)
    trials, tuned = _write_studies(out)
    quoted = {w: ",".join(f"'{arg}'" for arg in ["data=mnist", *a]) for w, a in WORKLOADS.items()}
    workloads = "{" + ",".join(f"{w}:[{args}]" for w, args in quoted.items()) + "}"
    cfg = compose_config(
        "report",
        "analyses_enabled=false",
        f"comparison.workloads={workloads}",
        f"comparison.optimizers=[{','.join(OPTIMIZERS)}]",
        f"comparison.seeds=[{','.join(map(str, SEEDS))}]",
        f"comparison.targets={{mnist:[{TARGETS[0]},{TARGETS[1]}]}}",
        output_dir=out,
    )
    result = build_report(cfg)
    return result, runs, trials, out / "report", tuned


@pytest.mark.slow
def test_time_to_target_is_the_median_of_the_first_crossing(comparison_report):
    _, runs, _, report, _ = comparison_report
    rows = _csv(report / "comparison_time_to_target.csv")
    assert len(rows) == len(WORKLOADS) * len(OPTIMIZERS) * len(TARGETS)
    for row in rows:
        firsts = [_first_images(runs[row["workload"], row["optimizer"], s], float(row["target"])) for s in SEEDS]
        assert float(row["images_median"]) == float(np.median(firsts)), row
        assert int(row["reached"]) == sum(math.isfinite(f) for f in firsts) and int(row["seeds"]) == len(SEEDS)
    assert any(r["reached"] == "0" for r in rows)  # sgd never reaches 95%: counted, not dropped


@pytest.mark.slow
def test_performance_profile_ratios_are_median_times_over_the_best(comparison_report):
    _, runs, _, report, tuned = comparison_report
    rows = _csv(report / "comparison_profile.csv")
    sources = {"untuned": (runs, SEEDS), "tuned": (tuned, sorted({s for _, _, s in tuned}))}
    for (kind, (source, seeds)), (level, target) in itertools.product(sources.items(), enumerate(TARGETS)):
        for workload in WORKLOADS:
            firsts = {o: [_first_images(source[workload, o, s], target) for s in seeds] for o in OPTIMIZERS}
            medians = {o: float(np.median(f)) for o, f in firsts.items()}
            best = min(medians.values())
            for o in OPTIMIZERS:
                want = math.inf if math.isinf(best) else medians[o] / best
                key = (f"{kind}, target {level + 1}", workload, o)
                got = [float(r["ratio"]) for r in rows if (r["profile"], r["workload"], r["optimizer"]) == key]
                assert got == [pytest.approx(want)], key


@pytest.mark.slow
def test_expected_best_after_k_trials_matches_enumerating_every_draw(comparison_report):
    _, _, trials, report, _ = comparison_report
    rows = _csv(report / "comparison_budget.csv")
    for (workload, optimizer), values in trials.items():
        curve = {
            int(r["k"]): float(r["expected_best"])
            for r in rows
            if (r["workload"], r["optimizer"]) == (workload, optimizer)
        }
        assert sorted(curve) == list(range(1, len(values) + 1))
        for k in (1, 2, 3):
            draws = [max(c) for c in itertools.product(values, repeat=k)]
            assert curve[k] == pytest.approx(sum(draws) / len(draws)), (workload, optimizer, k)


@pytest.mark.slow
def test_paired_tests_match_scipy_with_holm_correction(comparison_report):
    result, runs, _, report, _ = comparison_report
    rows = _csv(report / "comparison_paired.csv")
    for workload in WORKLOADS:
        mine = [r for r in rows if r["workload"] == workload]
        pairs = list(itertools.combinations(OPTIMIZERS, 2))
        assert [(r["a"], r["b"]) for r in mine] == pairs
        p = []
        for (a, b), row in zip(pairs, mine):
            x = [runs[workload, a, s]["test"]["accuracy"] for s in SEEDS]
            y = [runs[workload, b, s]["test"]["accuracy"] for s in SEEDS]
            assert float(row["mean_difference"]) == pytest.approx(np.mean(np.subtract(x, y)))
            p.append(scipy_stats.ttest_rel(x, y).pvalue)
            assert float(row["p"]) == pytest.approx(p[-1])
        order = np.argsort(p)
        holm, running = np.empty(len(p)), 0.0
        for rank, i in enumerate(order):
            running = max(running, min(1.0, (len(p) - rank) * p[i]))
            holm[i] = running
        for row, want in zip(mine, holm):
            assert float(row["p_holm"]) == pytest.approx(want)
            assert (row["significant"] == "True") == (want < 0.05)
    assert any(r["significant"] == "True" for r in rows) and not result.failed


@pytest.mark.slow
def test_the_section_says_what_it_lacked_and_the_rest_is_written(tmp_path):
    out = tmp_path / "out"
    cfg = compose_config("report", "analyses_enabled=false", "comparison.targets={mnist:[150]}", output_dir=out)
    result = build_report(cfg)
    assert [s.title for s in result.failed] == ["Optimizer comparison"]
    assert result.failed[0].error == "comparison.targets.mnist=150.0 must be a percentage in (0, 100]"
    assert (out / "report" / "REPORT.md").is_file()


# --- the whole chain, reduced: 4 workloads x 4 optimizers x 2 seeds on a subset, their studies, the report -----------

REDUCED = ["data.subset=256", "data.test_subset=1000", "data.val_size=500", "trainer.epochs=1"]


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason=f"needs Fashion-MNIST in {FASHION_MNIST} (scripts/setup.sh)")
def test_the_reduced_protocol_runs_end_to_end(tmp_path):
    out = f"paths.output_dir={tmp_path}"
    trained = run_command("train", "-m", "experiment=comparison", "seed=0,1", "trainer.progress=false", *REDUCED, out)
    assert trained.returncode == 0, trained.stderr[-2000:]
    # the protocol's runs keep their numbers and draw no figures (trainer.figures=false)
    assert len(list(tmp_path.glob("runs/**/confusion_matrix.csv"))) == 32 and not list(tmp_path.glob("runs/**/*.png"))
    tuned = run_command(
        "tune",
        "experiment=comparison",
        "tune.sampler=random",
        "tune.pruner.name=none",
        "tune.trials=2",
        "tune.seeds=[]",
        *REDUCED,
        out,
    )
    assert tuned.returncode == 0, tuned.stderr[-2000:]
    quoted = ",".join(f"'{o}'" for o in REDUCED)
    report = run_command(
        "report",
        out,
        "analyses_enabled=false",
        f"train_overrides=[{quoted}]",
        "comparison.seeds=[0,1]",
        "comparison.targets={mnist:[50,70],fashion_mnist:[40,60]}",
    )
    assert report.returncode == 0, report.stderr[-2000:]
    folder = tmp_path / "report"
    text = (folder / "REPORT.md").read_text()
    assert "## Optimizer comparison" in text and "No finished run of the comparison" not in text
    assert len(_csv(folder / "comparison_time_to_target.csv")) == 16 * 2
    assert {r["workload"] for r in _csv(folder / "comparison_paired.csv")} == set(WORKLOAD_NAMES)
    budget = _csv(folder / "comparison_budget.csv")
    assert {(r["workload"], r["optimizer"]) for r in budget} == {(w, o) for w in WORKLOAD_NAMES for o in ALL_OPTIMIZERS}
    assert (folder / "figures" / "performance_profiles.png").stat().st_size > 0
    assert (folder / "figures" / "budget_curves.png").stat().st_size > 0
    assert "Sampler: random." in text


@pytest.mark.slow
def test_before_any_comparison_run_the_section_is_one_line_and_lists_nothing_missing(tmp_path):
    # two cells, not the default 16 (each composes two configs): the same path, the reduced protocol composes them all
    one_workload = ("comparison.workloads={mnist:['data=mnist']}", "comparison.optimizers=[sgd,adam]")
    cfg = compose_config("report", "analyses_enabled=false", "tuning.enabled=false", *one_workload, output_dir=tmp_path)
    result = build_report(cfg)
    (section,) = [s for s in result.sections if s.title == "Optimizer comparison"]
    assert "scripts/reproduce.sh comparison" in section.markdown and "\n" not in section.markdown.strip()
    assert not section.missing and not section.failed
