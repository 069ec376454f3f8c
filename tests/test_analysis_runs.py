"""Each analysis end to end on a small checkpoint trained once for this module: files, cache, command line, errors."""

import json
import shutil

import numpy as np
import pytest
import torch
from hydra import compose

from cnnlab.analysis import ANALYSES, AnalysisResult
from cnnlab.analysis.results import NOT_OPTIONS, merge_options, option_overrides
from cnnlab.cli.analysis import run_analysis
from cnnlab.config import to_plain
from cnnlab.errors import CheckpointError, ConfigError
from cnnlab.models import SimpleCNN
from cnnlab.runs.checkpoint import load_checkpoint
from cnnlab.training.runner import train
from tests.helpers import compose_config, inside_hydra_app, run_command

FAST_UNTARGETED = {"mode": "untargeted", "adversarial_preset": {"name": "input_domain", "iterations": 15}}
FAST_TARGETED = {"mode": "targeted", "adversarial_preset": {"name": "input_domain", "targeted_iterations": 3}}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A batch-norm model trained for 250 steps on 2,000 real MNIST images (validated on 1,000)."""
    out = tmp_path_factory.mktemp("analysis")
    # not TINY: the analyses are checked on a batch-norm model trained for more than a few steps
    overrides = [
        "debug=smoke",
        "trainer.epochs=2",
        "data.batch_size=16",
        "data.val_size=1000",
        "model.batch_norm=true",
    ]
    return train(compose_config("train", *overrides, output_dir=out)).run_dir


def files_of(result: AnalysisResult) -> set[str]:
    return {p.name for p in result.out_dir.iterdir()}


@pytest.mark.slow
def test_filters_write_both_layers_with_the_checkpoint_weights(run_dir):
    result = ANALYSES["filters"](run_dir, {"layer": "both", "in_channel": 3})
    assert result.out_dir == run_dir / "analysis" / "filters" / "both-in3"
    assert files_of(result) == {"conv1.png", "conv2.png", "kernels.npz", "summary.json"}
    assert [p.name for p in result.figures] == ["conv1.png", "conv2.png"]
    weights = load_checkpoint(run_dir / "checkpoint.pt")["model"]
    with np.load(result.out_dir / "kernels.npz") as kernels:
        np.testing.assert_array_equal(kernels["conv2_weight"], weights["conv_block.4.weight"].numpy())
    assert result.summary["weight_shapes"] == {"conv1": [32, 1, 3, 3], "conv2": [32, 32, 3, 3]}
    mosaic = ANALYSES["filters"](run_dir, {"layer": "conv2", "in_channel": "all"})
    assert mosaic.out_dir.name == "conv2-inall" and files_of(mosaic) >= {"conv2.png", "kernels.npz"}


@pytest.mark.slow
def test_activations_write_the_maps_of_the_chosen_test_image(run_dir):
    result = ANALYSES["activations"](run_dir, {"layer": "conv2", "image": 7})
    assert files_of(result) == {"activations.png", "activations.npz", "summary.json"}
    with np.load(result.out_dir / "activations.npz") as arrays:
        assert arrays["maps"].shape == (32, 14, 14) and arrays["image"].shape == (1, 28, 28)
    assert result.summary["image"] == 7 and result.summary["label"] in [str(d) for d in range(10)]


@pytest.mark.slow
def test_occlusion_writes_one_figure_per_size_and_maps_of_the_promised_size(run_dir):
    result = ANALYSES["occlusion"](run_dir, {"sizes": [3, 14], "stride": 2, "images": 2, "batch_size": 50})
    assert files_of(result) == {"occlusion_k3.png", "occlusion_k14.png", "maps.npz", "summary.json"}
    assert result.summary["map_shapes"] == {"k3": [13, 13], "k14": [8, 8]}
    with np.load(result.out_dir / "maps.npz") as arrays:
        assert arrays["maps_k3"].shape == (2, 13, 13) and np.all((arrays["maps_k14"] >= 0) & (arrays["maps_k14"] <= 1))
        assert arrays["unoccluded"].min() > 0 and arrays["unoccluded"].max() <= 1


@pytest.mark.slow
def test_untargeted_images_stay_in_range_logits_rise_and_the_seed_repeats(run_dir):
    first = ANALYSES["adversarial"](run_dir, FAST_UNTARGETED)
    assert first.out_dir.name == "untargeted-input_domain"
    assert files_of(first) == {"images.png", "curves.png", "arrays.npz", "summary.json"}
    assert [row["target"] for row in first.summary["table"]] == [str(d) for d in range(10)]
    with np.load(first.out_dir / "arrays.npz") as arrays:
        images, logits = arrays["images"], arrays["logits"]
    assert images.shape == (10, 1, 28, 28) and images.min() >= 0 and images.max() <= 1
    assert logits.shape == (15, 10) and np.all(logits[-1] > logits[0])
    again = ANALYSES["adversarial"](run_dir, {**FAST_UNTARGETED, "force": True})
    with np.load(again.out_dir / "arrays.npz") as arrays:
        np.testing.assert_array_equal(arrays["images"], images)
    other = ANALYSES["adversarial"](run_dir, {**FAST_UNTARGETED, "seed": 1})
    with np.load(other.out_dir / "arrays.npz") as arrays:
        assert not np.array_equal(arrays["images"], images)


@pytest.mark.slow
def test_targeted_writes_the_90_pairs(run_dir):
    result = ANALYSES["adversarial"](run_dir, FAST_TARGETED)
    assert result.out_dir.name == "targeted-input_domain"
    assert files_of(result) == {"images.png", "arrays.npz", "summary.json"}
    table = result.summary["table"]
    assert len(table) == 90 and all(row["source"] != row["target"] for row in table)
    assert {(row["source"], row["target"]) for row in table} == {
        (str(s), str(t)) for s in range(10) for t in range(10) if s != t
    }
    assert 0 <= result.summary["success_rate"] <= 1 and result.summary["mean_mse_to_source"] > 0
    with np.load(result.out_dir / "arrays.npz") as arrays:
        assert arrays["images"].shape == (90, 1, 28, 28) and arrays["images"].min() >= 0 and arrays["images"].max() <= 1


@pytest.mark.slow
def test_report_preset_uses_the_0_255_range(run_dir):
    options = {"mode": "untargeted", "adversarial_preset": {"name": "report", "iterations": 3}}
    result = ANALYSES["adversarial"](run_dir, options)
    assert result.out_dir.name == "untargeted-report" and result.summary["settings"]["adversarial_preset"]["hi"] == 255
    with np.load(result.out_dir / "arrays.npz") as arrays:
        assert arrays["images"].max() <= 255 and arrays["init"].mean() > 100


@pytest.mark.slow
def test_a_second_call_is_served_from_summary_json_until_forced_or_changed(run_dir):
    options = {"layer": "conv1", "image": 2}
    first = ANALYSES["activations"](run_dir, options)
    npz, summary = first.out_dir / "activations.npz", first.out_dir / "summary.json"
    before = npz.stat().st_mtime_ns, summary.stat().st_mtime_ns
    cached = ANALYSES["activations"](run_dir, options)
    assert (npz.stat().st_mtime_ns, summary.stat().st_mtime_ns) == before  # read back, not computed and written again
    assert cached.summary == first.summary and cached.figures == first.figures
    forced = ANALYSES["activations"](run_dir, {**options, "force": True})
    assert (
        npz.stat().st_mtime_ns != before[0]
        and forced.summary["checkpoint_sha256"] == first.summary["checkpoint_sha256"]
    )
    assert json.loads((first.out_dir / "summary.json").read_text())["settings"] == {"layer": "conv1", "image": 2}


@pytest.mark.slow
def test_a_changed_checkpoint_is_recomputed(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("analysis"))
    first = ANALYSES["filters"](copy, {})
    state = torch.load(copy / "checkpoint.pt", weights_only=True)
    state["model"]["conv_block.0.weight"] += 1.0
    torch.save(state, copy / "checkpoint.pt")
    second = ANALYSES["filters"](copy, {})
    assert second.summary["checkpoint_sha256"] != first.summary["checkpoint_sha256"]
    with np.load(second.out_dir / "kernels.npz") as kernels:
        np.testing.assert_allclose(kernels["conv1_weight"], state["model"]["conv_block.0.weight"].numpy())


@pytest.mark.slow
def test_command_line_with_run_prints_the_table(run_dir):
    proc = run_command("adversarial", f"run={run_dir}", "adversarial_preset.iterations=5", "seed=3", "device=cpu")
    assert proc.returncode == 0, proc.stderr
    assert "target  predicted  confidence" in proc.stdout and "mean MSE to source" in proc.stdout
    summary = json.loads((run_dir / "analysis/adversarial/untargeted-input_domain/summary.json").read_text())
    assert summary["settings"]["seed"] == 3 and summary["settings"]["adversarial_preset"]["iterations"] == 5


@pytest.mark.slow
def test_a_composed_config_takes_a_checkpoint_file_and_needs_exactly_one_source(run_dir, make_cfg):
    cfg = make_cfg(f"checkpoint={run_dir / 'checkpoint.pt'}", "layer=conv2", config_name="filters")
    result = run_analysis("filters", cfg)
    assert result.out_dir == run_dir / "analysis/filters/conv2-in0" and (result.out_dir / "conv2.png").is_file()
    with pytest.raises(ConfigError, match="give exactly one of run=<run dir> or checkpoint=<checkpoint file>"):
        run_analysis("filters", make_cfg(config_name="filters"))
    with pytest.raises(ConfigError, match="give exactly one"):
        run_analysis(
            "filters", make_cfg(f"run={run_dir}", f"checkpoint={run_dir / 'checkpoint.pt'}", config_name="filters")
        )
    with pytest.raises(ConfigError, match="adversarial_preset.iterations=0 must be a positive integer"):
        run_analysis(
            "adversarial", make_cfg(f"run={run_dir}", "adversarial_preset.iterations=0", config_name="adversarial")
        )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "options", "error", "needle"),
    [
        ("activations", {"image": 10_000}, ConfigError, "image=10000 is out of range"),
        ("activations", {"image": -1}, ConfigError, "image=-1"),
        ("activations", {"layer": "conv3"}, ConfigError, "layer='conv3'"),
        ("filters", {"layer": "conv2", "in_channel": 32}, ConfigError, "in_channel=32 is out of range"),
        ("filters", {"layer": "fc1"}, ConfigError, "layer='fc1'"),
        ("occlusion", {"sizes": [3, 29]}, ConfigError, "larger than the 28-pixel image"),
        ("occlusion", {"sizes": [0]}, ConfigError, "sizes=0 must be a positive integer"),
        ("occlusion", {"stride": -1}, ConfigError, "stride=-1 must be a positive integer"),
        ("occlusion", {"images": 0}, ConfigError, "images=0"),
        ("occlusion", {"colour": 1}, ConfigError, "colour is not an option of occlusion"),
        ("adversarial", {"adversarial_preset": {"iterations": 0}}, ConfigError, "adversarial_preset.iterations=0"),
        (
            "adversarial",
            {"mode": "targeted", "adversarial_preset": {"targeted_iterations": -5}},
            ConfigError,
            "targeted_iterations=-5",
        ),
        ("adversarial", {"adversarial_preset": "strong"}, ConfigError, "adversarial_preset='strong' is unknown"),
        (
            "adversarial",
            {"adversarial_preset": {"name": "report", "steps": 5}},
            ConfigError,
            "adversarial_preset.steps is not a setting of adversarial_preset=report; allowed: name, lo, hi,",
        ),
        ("adversarial", {"mode": "both"}, ConfigError, "mode='both'"),
    ],
)
def test_bad_options_name_the_setting_and_write_nothing(run_dir, tmp_path, name, options, error, needle):
    copy = tmp_path / "run"
    copy.mkdir()
    shutil.copy(run_dir / "checkpoint.pt", copy / "checkpoint.pt")
    with pytest.raises(error, match=needle.replace("(", r"\(").replace("[", r"\[")):
        ANALYSES[name](copy, options)
    assert not (copy / "analysis").exists()


def test_unreadable_checkpoint_and_unfinished_run_are_checkpoint_errors(tmp_path):
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="checkpoint .*garbage.pt (was refused|is truncated)"):
        ANALYSES["filters"](tmp_path / "garbage.pt", {})
    with pytest.raises(CheckpointError, match="has no checkpoint.pt"):
        ANALYSES["filters"](tmp_path, {})
    torch.save(
        {"model": SimpleCNN().state_dict(), "config": {"model": {"name": "simple_cnn", "batch_norm": True}}},
        tmp_path / "bn.pt",
    )
    with pytest.raises(CheckpointError, match=r"checkpoint .*bn.pt does not fit this SimpleCNN"):
        ANALYSES["filters"](tmp_path / "bn.pt", {})


# values an override would misread unquoted: numbers, booleans, null, separators, quotes, escapes, interpolations
AWKWARD = [
    "5",
    "true",
    "null",
    "1e3",
    "a,b",
    "a=b",
    'say "hi"',
    "back\\slash\\",
    "${paths.root_dir}",
    "x\\${y}",
    "'",
    "é",
    " padded ",
    "[1]",
    "",
]


@pytest.mark.parametrize("text", AWKWARD)
def test_an_option_reaches_the_composed_config_as_the_very_value_given(text):
    for value in (text, [text, 1.5, None, True, 7]):
        settings = merge_options("activations", {"layer": value})
        assert settings["layer"] == value and type(settings["layer"]) is type(value)


def test_options_compose_as_the_command_line_would_inside_and_outside_a_running_hydra_app():
    options = {"mode": "targeted", "adversarial_preset": {"name": "report", "iterations": 3}, "device": "cpu"}
    outside = merge_options("adversarial", options)
    with inside_hydra_app():  # as when cnnlab-report runs analyses
        inside = merge_options("adversarial", options)
        command_line = compose(
            "adversarial", ["mode=targeted", "adversarial_preset=report", "adversarial_preset.iterations=3"]
        )
    assert inside == outside == {k: v for k, v in to_plain(command_line).items() if k not in NOT_OPTIONS}
    assert option_overrides("adversarial", options) == [
        "mode=targeted",
        "adversarial_preset=report",
        "adversarial_preset.iterations=3",
    ]
    assert outside["adversarial_preset"] == {
        "name": "report",
        "lo": 0.0,
        "hi": 255.0,
        "init_mean": 128.0,
        "init_std": 1.0,
        "step": 0.05,
        "eps": 0.3,
        "iterations": 3,
        "targeted_iterations": 5000,
        "beta": 0.001,
        "source_range": "unit",
    }
    # a preset by name alone, or changes to the default preset (which keeps its other settings)
    assert merge_options("adversarial", {"adversarial_preset": "report"})["adversarial_preset"]["iterations"] == 10000
    changed = merge_options("adversarial", {"adversarial_preset": {"beta": 5}})["adversarial_preset"]
    assert changed == {**merge_options("adversarial", {})["adversarial_preset"], "beta": 5}
    assert changed["name"] == "input_domain" and changed["iterations"] == 2000
