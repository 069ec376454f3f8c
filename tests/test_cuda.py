"""The CUDA path on a real GPU: training, resuming, every analysis, the report and the benchmark run on cuda, and what
they compute agrees with the same work on the CPU within float tolerance.

Every test is marked `cuda` and skipped where torch sees no CUDA GPU; `bash scripts/gpu_check.sh` runs them on one
(`pytest -m cuda tests/test_cuda.py`). Tolerances and why:

- Training runs with torch's defaults, as `cnnlab-train trainer.device=cuda` does: cuDNN rounds convolution inputs to
  TF32 (10-bit mantissa), so the GPU's losses differ from the CPU's by ~1e-3 relative. After a few optimizer steps from
  the same weights on the same batches, that moves only test images that sit on a decision boundary: on the CPU, even
  bf16 (7-bit mantissa) against fp32 changed the TINY batch-norm run's test accuracy by 0.09 points (21.43 against
  21.52 %). One point (100 of the 10,000 test images) is ten times that and far below what a wrong data order, a
  missing batch or weights not moved to the GPU would do.
- A run with its step recorded as a CUDA graph (`trainer.cuda_graph`, the default) against the same run launched op
  by op on the same GPU: the same kernels on the same batches. With torch's defaults cuDNN's backward kernels are not
  bitwise repeatable, and Adam's and RMSprop's first steps move each weight by about the learning rate whatever the
  size of its gradient, so rounding in tiny gradients shows: on the H200 the validation loss after epoch 1 differed
  by 0.18 % (2.1152 against 2.1114); checked at LOSS_RTOL. With `torch.backends.cudnn.deterministic` they still
  differed on the H200, by at most 4.1e-5 relative (RMSprop, 1.1e-5 for SGD with momentum): the recorded step need
  not get the same library kernels as the eager one, so float32 sums round in another order. They are checked at
  GRAPH_RTOL, 1e-4; a lost, repeated or reordered batch moves these losses by 0.5 % or more (the resume test's
  measure).
- The analyses are compared with cuDNN in full fp32 (`full_fp32_convolutions`), so only float32 rounding differs:
  occlusion probabilities agree to ~1e-7 (measured on the CPU, float32 against float64), checked at 1e-4.
- The adversarial ascent amplifies rounding: once a max-pool's choice flips, the images drift apart (float32 against
  float64 on the CPU: pixels 0.45 apart after 200 untargeted steps), so its images are not compared. Its predicted
  classes are what the analysis reports; a rounding difference can change one only where two classes are nearly tied
  (float32 and float64 gave the same 100 predictions, the closest top-two gap 0.06). So a predicted class may differ
  only where the CPU's top two probabilities are within TIE_GAP, and for at most MAX_DIFFERENT_SHARE of the images.
  The first step's target logits come from one forward pass of the same starting images and must agree to 1e-4.
- Robustness (300 test images, so one image is a third of a point): the clean accuracy and FGSM (the sign of one
  gradient, no random draw) may differ only where rounding flips a near-tie, within ACCURACY_POINTS. PGD starts at a
  random point drawn by the device's own generator (Captum's `rand_like`), so the CPU and the GPU attack from
  different starts: PGD_POINTS allows 15 images. On the H200, 2026-12-04, the test passed with these bounds.
- Attribution maps in full fp32 are gradients (or occlusion differences) through the same max-pool choices as on the
  CPU, which float32 rounding flips only at exact ties; each map must agree within 1e-3 of its largest value.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnlab.analysis import ANALYSES, AnalysisResult
from cnnlab.analysis.loading import load_run
from cnnlab.device import full_fp32_convolutions
from cnnlab.reporting import build_report
from cnnlab.runs.checkpoint import load_checkpoint
from cnnlab.training.runner import train
from tests.helpers import FIGURES, TINY, TRAIN_OVERRIDES, compose_config, run_command

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.slow,
    pytest.mark.xdist_group("cuda"),
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: torch.cuda.is_available() is False"),
]

CUDA = torch.device("cuda")
ACCURACY_POINTS = 1.0  # test accuracy, CPU against GPU, in percentage points (see the module docstring)
LOSS_RTOL = 1e-2  # a training loss, CPU against GPU (TF32 convolutions: ~1e-3)
GRAPH_RTOL = 1e-4  # a loss, graphed against eager steps, with cuDNN's deterministic kernels (see the docstring)
MAP_ATOL = 1e-4  # occlusion probabilities and activations in full fp32
TIE_GAP = 0.2  # top-two probability gap under which a predicted class may differ
MAX_DIFFERENT_SHARE = 0.05
PGD_POINTS = 5.0  # robust accuracy under PGD, CPU against GPU: their random starts differ (300 images)
# what the adversarial comparisons grow: fewer steps than the defaults keep the CPU side to seconds
UNTARGETED = {"mode": "untargeted", "adversarial_preset": {"name": "input_domain", "iterations": 200}}
TARGETED = {"mode": "targeted", "adversarial_preset": {"name": "input_domain", "targeted_iterations": 50}}
# tested on all 10,000 test images, as the tolerances above were measured
TINY_BN = (*TINY, FIGURES, "data.test_subset=null", "model.batch_norm=true", "trainer.progress=false")


def gpu_name() -> str:
    return f"cuda ({torch.cuda.get_device_name(CUDA)})"


def test_a_tiny_run_on_cuda_matches_the_same_run_on_the_cpu(tmp_path):
    """The command on cuda against `train` on the CPU: same run directory name (the device is not part of a run's
    identity), same history length, losses and accuracies within TF32's reach."""
    on_cpu = train(compose_config("train", *TINY_BN, "trainer.device=cpu", output_dir=tmp_path / "cpu"))
    proc = run_command("train", *TINY_BN, "trainer.device=cuda", f"paths.output_dir={tmp_path / 'cuda'}", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    gpu_dir = tmp_path / "cuda" / on_cpu.run_dir.relative_to(tmp_path / "cpu")
    on_gpu = json.loads((gpu_dir / "metrics.json").read_text())
    cpu = on_cpu.metrics
    assert on_gpu["status"] == cpu["status"] == "finished"
    assert on_gpu["device"] == gpu_name() and cpu["device"] == "cpu"
    assert len(on_gpu["history"]) == len(cpu["history"]) == 1
    for key in ("train_loss", "val_loss"):
        assert on_gpu["history"][0][key] == pytest.approx(cpu["history"][0][key], rel=LOSS_RTOL), key
    assert abs(on_gpu["history"][0]["val_accuracy"] - cpu["history"][0]["val_accuracy"]) <= ACCURACY_POINTS
    assert abs(on_gpu["test"]["accuracy"] - cpu["test"]["accuracy"]) <= ACCURACY_POINTS
    assert (gpu_dir / "checkpoint.pt").is_file() and (gpu_dir / "confusion_matrix.png").is_file()


def test_a_pruned_cuda_run_resumes_from_last_pt_with_its_data_order(tmp_path, caplog):
    """Stopped after epoch 1 (last.pt on the GPU's side of the loader's map_location), trained on to epoch 2 by a plain
    call: the restored data-order generator gives the epoch-2 loss of a run trained straight through. A lost or
    re-seeded data order changes that loss by 0.5-1.2 % on this run's settings (measured on the CPU); CUDA kernels that
    are not bitwise repeatable change it by ~1e-6."""
    cfg = compose_config("train", *TINY_BN, "trainer.epochs=2", "trainer.device=cuda", output_dir=tmp_path)
    pruned = train(cfg, on_epoch=lambda entry: True)
    assert pruned.status == "pruned" and load_checkpoint(pruned.run_dir / "last.pt")["epoch"] == 1
    with caplog.at_level(logging.INFO, logger="cnnlab"):
        resumed = train(cfg)
    assert "resuming" in caplog.text and "after epoch 1" in caplog.text
    assert resumed.status == "finished" and not (resumed.run_dir / "last.pt").exists()
    history = resumed.metrics["history"]
    assert len(history) == 2 and history[0] == pruned.metrics["history"][0]

    straight = train(
        compose_config(
            "train", *TINY_BN, "trainer.epochs=2", "trainer.device=cuda", "overwrite=true", output_dir=tmp_path
        )
    )
    assert straight.run_dir == resumed.run_dir and not straight.reused
    assert history[1]["train_loss"] == pytest.approx(straight.metrics["history"][1]["train_loss"], rel=1e-3)
    assert abs(resumed.metrics["test"]["accuracy"] - straight.metrics["test"]["accuracy"]) <= ACCURACY_POINTS


@pytest.mark.parametrize("deterministic", [False, True], ids=["defaults", "deterministic-cudnn"])
@pytest.mark.parametrize("optimizer", ["adam", "momentum", "rmsprop"])
def test_a_graphed_cuda_run_trains_as_the_eager_one_does(tmp_path, monkeypatch, optimizer, deterministic):
    """`trainer.cuda_graph` (the default) replays one recorded step per full batch; `false` launches the same kernels
    one by one. 300 images at batch 64 are four full batches and one of 44 per pass, so three epochs go through the
    eager warm-up, the recording, replays, and the eager last batch beside a recorded graph."""
    if deterministic:
        monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    overrides = ("debug=smoke", "data.subset=300", "data.val_size=1000", "model.batch_norm=true", "trainer.epochs=3")
    overrides += (f"optimizer={optimizer}", "trainer.device=cuda")
    graphed = train(compose_config("train", *overrides, output_dir=tmp_path / "graphed"))
    eager = train(compose_config("train", *overrides, "trainer.cuda_graph=false", output_dir=tmp_path / "eager"))
    assert graphed.status == eager.status == "finished"
    rtol = GRAPH_RTOL if deterministic else LOSS_RTOL
    for with_graph, without in zip(graphed.metrics["history"], eager.metrics["history"], strict=True):
        for key in ("train_loss", "val_loss"):
            assert with_graph[key] == pytest.approx(without[key], rel=rtol), (with_graph["epoch"], key)
    assert abs(graphed.metrics["test"]["accuracy"] - eager.metrics["test"]["accuracy"]) <= ACCURACY_POINTS


def test_a_run_graphed_on_cuda_resumes_on_the_cpu(tmp_path):
    """A graph needs a capturable optimizer, and last.pt records that mode; the CPU refuses it, so resuming there sets
    it back (rmsprop: its step counter moves back to the CPU too)."""
    overrides = (*TINY_BN, "trainer.epochs=2", "optimizer=rmsprop")
    on_cuda = compose_config("train", *overrides, "trainer.device=cuda", output_dir=tmp_path)
    pruned = train(on_cuda, on_epoch=lambda entry: True)
    assert all(
        group["capturable"] for group in load_checkpoint(pruned.run_dir / "last.pt")["optimizer"]["param_groups"]
    )
    resumed = train(compose_config("train", *overrides, "trainer.device=cpu", output_dir=tmp_path))
    assert resumed.status == "finished" and resumed.run_dir == pruned.run_dir and resumed.metrics["device"] == "cpu"
    assert resumed.metrics["history"][0] == pruned.metrics["history"][0] and len(resumed.metrics["history"]) == 2


def test_a_cuda_run_trained_without_its_test_pass_is_finished_by_resuming(tmp_path):
    cfg = compose_config("train", *TINY_BN, "trainer.device=cuda", output_dir=tmp_path)
    trained = train(cfg, test=False)
    assert trained.status == "trained" and load_checkpoint(trained.run_dir / "last.pt")["epoch"] == 1
    finished = train(cfg)
    assert finished.status == "finished" and finished.metrics["history"] == trained.metrics["history"]
    assert 0 <= finished.metrics["test"]["accuracy"] <= 100


def test_evaluation_during_the_epoch_on_cuda_matches_the_cpu(tmp_path):
    """`trainer.eval_every` on cuda: the same points (optimizer step, images seen) as on the CPU, their accuracies
    within TF32's reach, and training seconds (evaluation excluded) that grow from point to point."""
    overrides = (*TINY_BN, "trainer.eval_every=0.25")
    on_cpu = train(compose_config("train", *overrides, "trainer.device=cpu", output_dir=tmp_path / "cpu"))
    on_gpu = train(compose_config("train", *overrides, "trainer.device=cuda", output_dir=tmp_path / "cuda"))
    cpu, gpu = on_cpu.metrics["history"][0]["evals"], on_gpu.metrics["history"][0]["evals"]
    assert cpu and [(p["step"], p["images_seen"]) for p in gpu] == [(p["step"], p["images_seen"]) for p in cpu]
    for at_cpu, at_gpu in zip(cpu, gpu):
        assert abs(at_gpu["val_accuracy"] - at_cpu["val_accuracy"]) <= ACCURACY_POINTS
        assert at_gpu["val_loss"] == pytest.approx(at_cpu["val_loss"], rel=LOSS_RTOL)
    seconds = [p["train_seconds"] for p in gpu]
    assert seconds == sorted(seconds) and 0 < seconds[-1] <= on_gpu.metrics["history"][0]["train_s"]


@pytest.fixture(scope="module")
def cuda_run(tmp_path_factory) -> Path:
    """A batch-norm model trained on the GPU for 250 steps on 2,000 images (as tests/test_analysis_runs.py's, so its
    adversarial images are grown against a model that classifies, not a nearly uniform one)."""
    out = tmp_path_factory.mktemp("cuda-analysis")
    overrides = ["debug=smoke", "trainer.epochs=2", "data.batch_size=16", "data.val_size=1000", "model.batch_norm=true"]
    result = train(compose_config("train", *overrides, "trainer.device=cuda", output_dir=out))
    assert result.status == "finished" and result.metrics["device"] == gpu_name()
    return result.run_dir


def on_both(run_dir: Path, tmp_path: Path, name: str, options: dict) -> tuple[AnalysisResult, AnalysisResult]:
    """The analysis of the same checkpoint on the CPU and on the GPU (in full fp32), each in its own copy of the run
    directory: an analysis's cache is keyed on the checkpoint and settings, not the device."""
    copies = {device: shutil.copytree(run_dir, tmp_path / device / run_dir.name) for device in ("cpu", "cuda")}
    on_cpu = ANALYSES[name](copies["cpu"], options, device="cpu")
    with full_fp32_convolutions(CUDA):
        on_gpu = ANALYSES[name](copies["cuda"], options, device="cuda")
    assert on_cpu.figures and [p.name for p in on_gpu.figures] == [p.name for p in on_cpu.figures]
    return on_cpu, on_gpu


def arrays_of(result: AnalysisResult) -> dict[str, np.ndarray]:
    out = {}
    for file in result.summary["arrays"]:
        with np.load(result.out_dir / file) as npz:
            out.update({f"{file}:{key}": npz[key] for key in npz.files})
    return out


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("filters", {"layer": "both"}),
        ("activations", {"layer": "conv1", "image": 0}),
        ("activations", {"layer": "conv2", "image": 3}),
        ("occlusion", {"sizes": [3, 5, 14], "stride": 1, "images": 4}),
    ],
)
def test_filters_activations_and_occlusion_on_cuda_match_the_cpu(cuda_run, tmp_path, name, options):
    on_cpu, on_gpu = on_both(cuda_run, tmp_path, name, options)
    cpu, gpu = arrays_of(on_cpu), arrays_of(on_gpu)
    assert cpu.keys() == gpu.keys() and cpu
    for key, value in cpu.items():
        if np.issubdtype(value.dtype, np.integer):  # labels and predicted classes
            np.testing.assert_array_equal(gpu[key], value, err_msg=key)
        else:
            np.testing.assert_allclose(gpu[key], value, rtol=1e-4, atol=MAP_ATOL, err_msg=key)
    if name == "occlusion":
        assert {k.split(":")[1] for k in cpu} >= {"maps_k3", "maps_k5", "maps_k14", "predicted"}


def top_two_gap(run_dir: Path, images: np.ndarray) -> np.ndarray:
    """The CPU model's top-two probability gap for each image."""
    loaded = load_run(run_dir / "checkpoint.pt", "cpu")
    with torch.no_grad():
        probs = loaded.classifier(torch.from_numpy(images)).softmax(dim=1)
    top = probs.topk(2, dim=1).values
    return (top[:, 0] - top[:, 1]).numpy()


@pytest.mark.parametrize("options", [UNTARGETED, TARGETED], ids=["untargeted", "targeted"])
def test_adversarial_predictions_on_cuda_match_the_cpu_except_near_ties(cuda_run, tmp_path, options):
    on_cpu, on_gpu = on_both(cuda_run, tmp_path, "adversarial", options)
    cpu, gpu = arrays_of(on_cpu), arrays_of(on_gpu)
    np.testing.assert_array_equal(gpu["arrays.npz:init"], cpu["arrays.npz:init"])  # drawn on the CPU for every device
    np.testing.assert_array_equal(gpu["arrays.npz:targets"], cpu["arrays.npz:targets"])
    np.testing.assert_allclose(gpu["arrays.npz:logits"][0], cpu["arrays.npz:logits"][0], rtol=1e-4, atol=1e-4)
    assert np.isfinite(gpu["arrays.npz:images"]).all()
    different = np.flatnonzero(gpu["arrays.npz:predicted"] != cpu["arrays.npz:predicted"])
    gaps = top_two_gap(cuda_run, cpu["arrays.npz:images"])
    n_images = len(cpu["arrays.npz:predicted"])
    assert len(different) <= math.floor(MAX_DIFFERENT_SHARE * n_images), (different, gaps[different])
    assert (gaps[different] < TIE_GAP).all(), (different, gaps[different])


def test_robustness_on_cuda_matches_the_cpu(cuda_run, tmp_path):
    """FGSM and PGD (Captum) on the GPU against the CPU on the same images: the clean accuracy and FGSM (no random
    draw) within a point; PGD's random start comes from the device's own generator, so it may move a few more images."""
    options = {"images": 300, "epsilons": [0, 0.1, 0.3]}
    on_cpu, on_gpu = on_both(cuda_run, tmp_path, "robustness", options)
    cpu, gpu = on_cpu.summary["accuracy"], on_gpu.summary["accuracy"]
    assert gpu["fgsm"][0] == gpu["pgd"][0]  # epsilon 0: both are the clean accuracy on the same images
    np.testing.assert_allclose(gpu["fgsm"], cpu["fgsm"], atol=ACCURACY_POINTS)
    np.testing.assert_allclose(gpu["pgd"], cpu["pgd"], atol=PGD_POINTS)
    # PGD searches the same ball in ten steps where FGSM takes one: at least as strong, up to near-ties
    assert all(pgd <= fgsm + ACCURACY_POINTS for fgsm, pgd in zip(gpu["fgsm"][1:], gpu["pgd"][1:]))


def test_attribution_maps_on_cuda_match_the_cpu(cuda_run, tmp_path):
    """Saliency, Integrated Gradients and occlusion (Captum) on the GPU in full fp32 against the CPU, each map within
    1e-3 of its largest value: gradients through the same max-pool choices differ only by float32 rounding."""
    on_cpu, on_gpu = on_both(cuda_run, tmp_path, "attributions", {"images": 4, "perturbations": 4})
    cpu, gpu = arrays_of(on_cpu), arrays_of(on_gpu)
    np.testing.assert_array_equal(gpu["attributions.npz:labels"], cpu["attributions.npz:labels"])
    for method in ("saliency", "integrated_gradients", "occlusion"):
        expected = cpu[f"attributions.npz:{method}"]
        scale = float(np.abs(expected).max())
        assert scale > 0, method
        np.testing.assert_allclose(
            gpu[f"attributions.npz:{method}"], expected, rtol=0, atol=1e-3 * scale, err_msg=method
        )


def test_the_report_runs_its_analyses_on_cuda(tmp_path):
    """Two TINY runs trained on the GPU and the report over them with analysis_device=cuda: every analysis shown."""
    out = tmp_path / "outputs"
    for run in ("adam", "adam_bn"):
        result = train(
            compose_config(
                "train",
                *TINY,
                f"+experiment/report={run}",
                "seed=0",
                "trainer.device=cuda",
                "trainer.progress=false",
                output_dir=out,
            )
        )
        assert result.status == "finished"
    cfg = compose_config(
        "report",
        "seeds=[0]",
        TRAIN_OVERRIDES,
        "tables.optimizers=[adam]",
        "tables.batch_norm=[adam,adam_bn]",
        "analyses_enabled=true",
        "analysis_device=cuda",
        output_dir=out,
    )
    cfg.analyses = [
        {"analysis": "filters", "run": "adam_bn", "options": {"layer": "conv1"}},
        {"analysis": "activations", "run": "adam_bn", "options": {"layer": "conv2", "image": 0}},
        {"analysis": "occlusion", "run": "adam_bn", "options": {"sizes": [5], "images": 2}},
        {"analysis": "adversarial", "run": "adam_bn", "options": {"mode": "untargeted"}},
        {"analysis": "adversarial", "run": "adam_bn", "options": {"mode": "targeted"}},
    ]
    result = build_report(cfg)
    text = result.markdown.read_text()
    assert "5 of 5 analyses shown, 0 skipped (run missing), 0 failed" in text
    assert f"Runs trained on: {gpu_name()}" in text
    assert (result.report_dir / "report.html").is_file() and (result.report_dir / "best_model.pt").is_file()


def test_the_benchmark_runs_both_sides_on_cuda_and_they_agree(tmp_path):
    proc = run_command("bench", "quick=true", "device=cuda", f"paths.output_dir={tmp_path}", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "bench" / "bench-quick.json").read_text())
    assert results["device"] == gpu_name() and results["hardware"]["gpu"] == torch.cuda.get_device_name(CUDA)
    assert proc.stdout.splitlines()[0].endswith(f"; comparisons on {gpu_name()}")
    by_name = {c["name"]: c for c in results["comparisons"]}
    assert set(by_name) == {
        "training step, fp32",
        "training step, bf16",
        "validation during the epoch, eval_every=0.5",
        "occlusion, 1 image, 5x5",
        "occlusion vs Captum, 10 images, 5x5",
        "untargeted, 10 classes x 2 steps",
        "targeted, 90 pairs x 2 steps",
    }
    for comparison in by_name.values():
        assert comparison["same_result"] is True, comparison
        assert comparison["cnnlab"] > 0 and comparison["details"]["device"] == "cuda"
