"""The benchmark in quick mode: every comparison runs, writes bench.json and finds both sides computing the same."""

import json
from pathlib import Path

import pytest
import torch

from cnnlab.bench.analyses import IMAGE_ATOL, agreement
from cnnlab.bench.registry import BenchContext
from cnnlab.bench.suite import run_suite
from cnnlab.bench.timing import Comparison, interleaved
from cnnlab.errors import ConfigError
from tests.helpers import run_command


def test_interleaved_times_rounds_after_warmup_and_keeps_every_output():
    calls = []
    timed = interleaved(
        {"a": lambda: calls.append("a") or len(calls), "b": lambda: calls.append("b") or len(calls)},
        repeats=3,
        warmup=2,
    )
    assert calls == ["a", "b"] * 5  # round-robin, warm-up rounds included in the calls
    assert len(timed["a"].seconds) == 3 and timed["a"].outputs == [1, 3, 5, 7, 9]
    assert len(timed["b"].seconds) == 3 and timed["b"].outputs == [2, 4, 6, 8, 10]


def test_interleaved_syncs_inside_every_call_so_queued_device_work_is_timed():
    events = []
    timed = interleaved({"a": lambda: events.append("call")}, repeats=2, warmup=1, sync=lambda: events.append("sync"))
    assert events == ["call", "sync"] * 3 and len(timed["a"].seconds) == 2


def context(device: str) -> BenchContext:
    """Settings for selection checks only: nothing is measured with them."""
    return BenchContext(
        data_root=Path("data"),
        data_name="mnist",
        optimizer={},
        model={},
        jobs=(),
        batch_size=64,
        train_batches=1,
        sweep_batches=1,
        sweep_jobs=1,
        memory_subset=None,
        untargeted_steps=1,
        targeted_steps=1,
        tracking_epochs=1,
        repeats=1,
        warmup=0,
        seed=0,
        scratch=Path("scratch"),
        device=torch.device(device),
    )


@pytest.mark.parametrize("name", ["sweep", "memory"])
def test_cpu_only_comparisons_are_refused_on_a_gpu_before_anything_runs(name):
    # torch.device("cuda") needs no GPU; the selection is refused before any comparison touches it
    with pytest.raises(ConfigError) as err:
        run_suite(context("cuda"), ["training", name])
    assert str(err.value) == (
        f"only={name!r} measures the CPU path and runs only with device=cpu; with device=cuda choose from: "
        "training, eval_every, occlusion, untargeted, targeted, captum_occlusion, tracking"
    )


def test_speedup_follows_the_direction_of_the_unit():
    assert Comparison("x", "images/s", 100.0, 250.0, True).speedup == 2.5
    assert Comparison("x", "s", 10.0, 2.0, True, higher_is_better=False).speedup == 5.0
    assert Comparison("x", "MB", None, 900.0, True).to_json()["speedup"] is None


def test_analysis_check_fails_when_any_call_differs_beyond_the_tolerance():
    same = [torch.zeros(2, 3), torch.ones(2, 3)]
    assert agreement(same, [t + IMAGE_ATOL / 2 for t in same], IMAGE_ATOL)["same"] is True
    shifted = [same[0], same[1].clone().index_fill_(1, torch.tensor([2]), 1 + 2 * IMAGE_ATOL)]  # only the last call
    check = agreement(same, shifted, IMAGE_ATOL)
    assert check["same"] is False and check["max_abs_dev"] == pytest.approx(2 * IMAGE_ATOL, rel=1e-3)
    assert agreement(same, same[::-1], IMAGE_ATOL)["same"] is False  # outputs are paired call by call


@pytest.mark.slow
def test_quick_bench_writes_json_and_both_sides_agree(tmp_path):
    proc = run_command("bench", "quick=true", f"paths.output_dir={tmp_path}", timeout=300)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((tmp_path / "bench" / "bench-quick.json").read_text())
    assert results["hardware"]["torch"] == torch.__version__ and results["hardware"]["threads"] >= 1
    assert results["device"] == "cpu" and proc.stdout.splitlines()[0].endswith("; comparisons on cpu")
    by_name = {c["name"]: c for c in results["comparisons"]}
    analyses = {
        "occlusion, 1 image, 5x5",
        "occlusion vs Captum, 10 images, 5x5",
        "untargeted, 10 classes x 2 steps",
        "targeted, 90 pairs x 2 steps",
    }
    assert set(by_name) == {  # all but tracking, which runs only when named
        "training step, fp32",
        "training step, bf16",
        "sweep of 6 runs",
        "peak memory, 1-epoch run",
        "validation during the epoch, eval_every=0.5",
        *analyses,
    }
    for comparison in by_name.values():
        assert comparison["same_result"] is True, comparison
        assert comparison["cnnlab"] > 0
    fp32 = by_name["training step, fp32"]
    assert fp32["baseline"] > 0 and fp32["speedup"] == pytest.approx(fp32["cnnlab"] / fp32["baseline"], rel=1e-2)
    assert fp32["details"]["max_rel_dev"] < 1e-5  # identical batches and weights: only float rounding differs
    assert len(fp32["details"]["cnnlab_loss_per_pass"]) == 2  # one warm-up and one timed pass, both checked
    assert by_name["sweep of 6 runs"]["details"]["jobs"] == ["adam", "adam_bn", "momentum", "rmsprop", "sgd", "sgd_bn"]
    assert "| training step, fp32 | images/s |" in proc.stdout
    for name in analyses:  # seconds per call, fewer is better; both sides computed the same maps or images
        analysis = by_name[name]
        target = ">= 3x (else Captum's Occlusion replaces cnnlab's)" if "Captum" in name else ">= 10x"
        assert analysis["unit"] == "s" and analysis["higher_is_better"] is False and analysis["target"] == target
        assert analysis["speedup"] == pytest.approx(analysis["baseline"] / analysis["cnnlab"], rel=1e-2)
        assert analysis["details"]["batch_norm"] is True
    assert by_name["occlusion, 1 image, 5x5"]["details"]["positions"] == 24 * 24  # stride 1: (28 - 5 + 1)^2
    assert by_name["occlusion, 1 image, 5x5"]["details"]["max_abs_dev"] < 1e-5
    assert by_name["occlusion vs Captum, 10 images, 5x5"]["details"]["max_abs_dev"] < 1e-5
    assert by_name["untargeted, 10 classes x 2 steps"]["details"]["images"] == 10
    assert by_name["targeted, 90 pairs x 2 steps"]["details"]["images"] == 90
    for name in ("training step, fp32", "training step, bf16", *analyses):
        assert by_name[name]["details"]["device"] == "cpu"
    assert "trainer.device=cpu" in by_name["peak memory, 1-epoch run"]["details"]["command"]
    during = by_name["validation during the epoch, eval_every=0.5"]  # the same weights, one more validation per epoch
    assert during["details"]["validations_per_epoch"] == 2 and during["higher_is_better"] is False
