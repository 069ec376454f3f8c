"""The report's Analyses section: per configured entry a heading, its figures and the key numbers of its summary.json;
skipped and failed entries say why (and what to run) instead of disappearing."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cnnlab.reporting.analyses import AnalysisEntry, AnalysisOutcome, AnalysisStatus, tally
from cnnlab.reporting.markdown import md_image, md_table


def _percent(value: float) -> str:
    return f"{value:.1%}"


def title(entry: AnalysisEntry) -> str:
    s = entry.settings
    if entry.analysis == "filters":
        channel = "" if s["layer"] == "conv1" else f", input channel {s['in_channel']}"
        return f"Filters of {'conv1 and conv2' if s['layer'] == 'both' else s['layer']}{channel}"
    if entry.analysis == "activations":
        return f"Activation maps of {s['layer']}, test image {s['image']}"
    if entry.analysis == "occlusion":
        sizes = ", ".join(map(str, s["sizes"]))
        return f"Occlusion, patch sizes {sizes} (stride {s['stride']}, first {s['images']} test images)"
    return f"{s['mode'].capitalize()} adversarial images ({s['adversarial_preset']['name']} preset)"


def _filters(summary: Mapping[str, Any]) -> list[str]:
    shapes = [f"{name} weights {'x'.join(map(str, shape))}" for name, shape in summary["weight_shapes"].items()]
    return [f"Kernels drawn on one symmetric colour scale per figure: {'; '.join(shapes)}.", ""]


def _activations(summary: Mapping[str, Any]) -> list[str]:
    shape = "x".join(map(str, summary["map_shape"]))
    return [
        f"Test image {summary['image']} (actual {summary['label']}) is predicted {summary['predicted']} "
        f"({_percent(summary['confidence'])}); {summary['layer']} output {shape}, before batch norm and ReLU.",
        "",
    ]


def _occlusion(summary: Mapping[str, Any]) -> list[str]:
    sizes = list(summary["map_shapes"])
    rows = [
        [
            row["index"],
            row["actual"],
            row["predicted"],
            f"{row['unoccluded_probability']:.4f}",
            *(f"{row['min_probability'][k]:.4f}" for k in sizes),
        ]
        for row in summary["images"]
    ]
    headers = [
        "test image",
        "actual",
        "predicted",
        "p(actual), unoccluded",
        *(f"lowest p, {k[1:]}x{k[1:]}" for k in sizes),
    ]
    return [
        "Probability of the true class without a patch, and the lowest it falls to with each patch size:",
        "",
        *md_table(headers, rows),
    ]


def _untargeted(summary: Mapping[str, Any]) -> list[str]:
    rows = [
        [r["target"], r["predicted"], _percent(r["confidence"]), f"{r['final_logit']:.2f}"] for r in summary["table"]
    ]
    hits = sum(r["predicted"] == r["target"] for r in summary["table"])
    return [
        f"{hits} of {len(rows)} images are classified as their target; mean MSE to the first test image of the "
        f"target class {summary['mean_mse_to_source']:.4f} (pixels in [0, 1]).",
        "",
        *md_table(["target", "predicted", "confidence", "final target logit"], rows),
    ]


def _targeted(summary: Mapping[str, Any]) -> list[str]:
    table = summary["table"]
    classes = list(dict.fromkeys(r["source"] for r in table))
    cell = {(r["source"], r["target"]): r for r in table}

    def show(s: str, t: str) -> str:
        if s == t:
            return "—"
        r = cell[s, t]
        text = f"{r['predicted']} ({r['confidence']:.0%})"
        return text if r["predicted"] == t else f"**{text}**"

    rows = [[s, *(show(s, t) for t in classes)] for s in classes]
    return [
        f"Success rate {_percent(summary['success_rate'])} ({round(summary['success_rate'] * len(table))} of "
        f"{len(table)} pairs classified as their target); mean MSE to the source image "
        f"{summary['mean_mse_to_source']:.4f} (pixels in [0, 1]). Prediction (confidence) per pair, misses in bold:",
        "",
        *md_table(["looks like \\ target", *classes], rows),
    ]


def _adversarial(summary: Mapping[str, Any]) -> list[str]:
    return (_targeted if summary["settings"]["mode"] == "targeted" else _untargeted)(summary)


KEY_NUMBERS: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "filters": _filters,
    "activations": _activations,
    "occlusion": _occlusion,
    "adversarial": _adversarial,
}


def analyses_section(outcomes: Sequence[AnalysisOutcome] | None, labels: Mapping[str, str]) -> list[str]:
    """`outcomes` is None when the section is turned off (`analyses_enabled=false`)."""
    if not outcomes:
        return []
    done, skipped, failed = tally(outcomes)
    lines = [
        "## Analyses",
        "",
        f"{done} of {len(outcomes)} analyses shown, {skipped} skipped (run missing), "
        f"{failed} failed. Each uses the seed shown above for its run; its files and `summary.json` are in "
        "the run's `analysis/` folder, and the command under each heading repeats it.",
        "",
    ]
    for o in outcomes:
        label = labels[o.entry.run]
        heading = f"### {title(o.entry)}: {label}" + (f", seed {o.run.seed}" if o.run else "")
        lines += [heading, ""]
        if o.status == AnalysisStatus.SKIPPED:
            lines += [f"Skipped: no finished run of {label}. Train it with `{o.message}`, then re-run the report.", ""]
            continue
        lines += [f"`{o.entry.command(o.run.run_dir)}`", ""]
        if o.status == AnalysisStatus.FAILED:
            lines += [f"**Failed:** {o.message}", ""]
            continue
        summary = o.result.summary
        lines += [f"Computed {summary['created_at']} in {summary['compute_time_s']:.1f} s.", ""]
        lines += KEY_NUMBERS[o.entry.analysis](summary)
        for path in o.figures:
            lines += md_image(path, f"{title(o.entry)}, {label}: {path.name}")
    return lines
