"""Robustness and attributions through Captum, on a small model trained once for this module: the attacks' budgets and
ranges, the attack ranking, the attribution identities, occlusion against cnnlab's own maps, and the report section."""

import math

import pytest
import torch
from captum.attr import Occlusion
from omegaconf import OmegaConf

from cnnlab.analysis import ANALYSES
from cnnlab.analysis.attributions import Attributions, attribute, occlusion_attribution
from cnnlab.analysis.loading import load_run, predict
from cnnlab.analysis.occlusion import occlusion_maps
from cnnlab.analysis.robustness import Robustness, attacked_images, perturb
from cnnlab.analysis.robustness_report import robustness_section
from cnnlab.reporting.sections import ReportContext
from cnnlab.training.runner import train
from tests.helpers import compose_config

ROBUST = {"images": 300, "epsilons": [0, 0.05, 0.1, 0.2, 0.3]}
SETTINGS = Robustness(
    attacks=("fgsm", "pgd"),
    epsilons=(0.1, 0.3),
    steps=10,
    step_size=None,
    random_start=True,
    images=64,
    subset_seed=0,
    batch_size=64,
)
MAPS = Attributions(
    methods=("saliency", "integrated_gradients", "occlusion"),
    images=6,
    ig_steps=200,
    occlusion_size=5,
    occlusion_stride=1,
    fill=0.0,
    noise=0.1,
    perturbations=4,
    seed=0,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A model trained for two epochs on 2,000 real MNIST images: accurate enough that attacks have work to do."""
    out = tmp_path_factory.mktemp("robustness")
    overrides = ["debug=smoke", "trainer.epochs=2", "data.batch_size=16", "data.val_size=1000"]
    return train(compose_config("train", *overrides, output_dir=out)).run_dir


@pytest.fixture(scope="module")
def loaded(run_dir):
    return load_run(run_dir / "checkpoint.pt", "cpu")


def test_robust_accuracy_starts_at_the_clean_accuracy_and_pgd_is_the_stronger_attack(run_dir, loaded):
    result = ANALYSES["robustness"](run_dir, ROBUST, "cpu")
    accuracy = result.summary["accuracy"]
    index = attacked_images(len(loaded.test), ROBUST["images"], 0)
    predicted, _ = predict(loaded.classifier, loaded.test.x[index])
    clean = 100.0 * int((predicted == loaded.test.y[index]).sum()) / len(index)
    assert accuracy["fgsm"][0] == accuracy["pgd"][0] == clean
    assert clean > 80
    for fgsm, pgd in zip(accuracy["fgsm"][1:], accuracy["pgd"][1:]):
        assert pgd <= fgsm + 1.0
    assert accuracy["pgd"][-1] < clean - 20  # at 0.3 the attack really bites
    assert {p.name for p in result.out_dir.iterdir()} == {"robustness.png", "robustness.npz", "summary.json"}
    again = ANALYSES["robustness"](run_dir, ROBUST, "cpu")
    assert again.summary["created_at"] == result.summary["created_at"]  # reused, not recomputed


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_every_perturbed_image_stays_within_epsilon_and_the_pixel_range(loaded, attack):
    x, y = loaded.test.x[:64], loaded.test.y[:64]
    for eps in SETTINGS.epsilons:
        adv = perturb(loaded.classifier, x, y, attack, eps, SETTINGS).detach()
        assert float((adv - x).abs().max()) <= eps + 1e-6
        assert float(adv.min()) >= 0 and float(adv.max()) <= 1
        assert not torch.equal(adv, x)


def test_saliency_is_the_input_gradient_of_the_true_class(loaded):
    x, y = loaded.test.x[:6].clone().requires_grad_(True), loaded.test.y[:6]
    loaded.classifier(x).gather(1, y[:, None]).sum().backward()
    saliency = attribute(loaded.classifier, "saliency", loaded.test.x[:6], y, MAPS)
    torch.testing.assert_close(saliency, x.grad, rtol=1e-5, atol=1e-7)


def test_integrated_gradients_are_complete(loaded):
    x, y = loaded.test.x[:6], loaded.test.y[:6]
    ig = attribute(loaded.classifier, "integrated_gradients", x, y, MAPS)
    with torch.no_grad():
        logits = loaded.classifier(torch.cat([x, torch.zeros_like(x)])).gather(1, torch.cat([y, y])[:, None])[:, 0]
    change = logits[:6] - logits[6:]
    assert torch.all((ig.flatten(1).sum(1) - change).abs() <= 0.01 * change.abs())


@pytest.mark.parametrize("size,stride", [(5, 1), (7, 3), (4, 2)])
def test_captum_occlusion_equals_cnnlab_s_maps(loaded, size, stride):
    x, y = loaded.test.x[:4], loaded.test.y[:4]
    maps = occlusion_maps(loaded.folded, x, y, size=size, stride=stride, fill=0.5)
    with torch.no_grad():
        clean = loaded.classifier(x).softmax(dim=1).gather(1, y[:, None])[:, 0]
    ours = occlusion_attribution(maps, clean, size, stride, x.shape[-1])
    captum = Occlusion(lambda z: loaded.classifier(z).softmax(dim=1)).attribute(
        x, (1, size, size), strides=(1, stride, stride), baselines=0.5, target=y
    )
    assert float((ours - captum).abs().max()) <= 1e-5


def test_the_attribution_checks_tell_a_trained_model_from_a_random_one(run_dir):
    result = ANALYSES["attributions"](run_dir, {"images": 4, "ig_steps": 32, "perturbations": 4}, "cpu")
    checks = result.summary["checks"]
    assert set(checks) == {"saliency", "integrated_gradients", "occlusion"}
    # saliency of a random network shares little with the trained one's (Adebayo et al.'s finding)
    assert checks["saliency"]["randomisation_rank_correlation"] < 0.8
    assert all(math.isfinite(c["infidelity"]) and c["infidelity"] >= 0 for c in checks.values())  # a mean of squares
    assert {p.name for p in result.figures} == {"attributions.png"}


def test_the_report_section_summarises_robustness_over_seeds(run_dir, tmp_path):
    settings = OmegaConf.create(
        {
            "robustness": {"enabled": True, "options": {"images": 100, "epsilons": [0, 0.1]}},
            "attributions": {"options": {"images": 2, "ig_steps": 16, "perturbations": 2}},
            "analysis_device": "cpu",
            "paths": {"data_dir": str(compose_config("train").paths.data_dir)},
        }
    )
    figures = tmp_path / "figures"
    figures.mkdir()
    context = ReportContext(
        settings=settings,
        report_dir=tmp_path,
        figures_dir=figures,
        runs={"adam": [run_dir], "sgd": []},
        labels={"adam": "Adam", "sgd": "SGD"},
        seeds=[42],
    )
    section = robustness_section(context)
    assert "| Adam | FGSM | 1 |" in section.markdown and "| Adam | PGD | 1 |" in section.markdown
    assert "SGD" not in section.markdown
    rows = section.tables["robustness"]
    assert [(r["attack"], r["epsilon"]) for r in rows] == [("fgsm", 0.0), ("fgsm", 0.1), ("pgd", 0.0), ("pgd", 0.1)]
    assert rows[0]["mean"] == rows[2]["mean"]  # epsilon 0 is the clean accuracy for both attacks
    assert {r["method"] for r in section.tables["attribution_checks"]} == {
        "saliency",
        "integrated_gradients",
        "occlusion",
    }
    assert (figures / "robustness.png").is_file() and (figures / "attributions_adam.png").is_file()
