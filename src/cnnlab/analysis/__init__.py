"""Analyses of a finished run, each a plain function `fn(run_dir, options, device="auto") -> AnalysisResult`.

`run_dir` is a run directory or a checkpoint file; `options` are the keys of `conf/<name>.yaml` (missing ones take
its defaults); outputs go under `<run dir>/analysis/<name>/<setting>/` with a `summary.json` that also serves as a
cache keyed on the checkpoint's SHA-256 and the settings.
"""

from collections.abc import Callable

from cnnlab.analysis.activations import activations
from cnnlab.analysis.adversarial import adversarial
from cnnlab.analysis.attributions import attributions
from cnnlab.analysis.filters import filters
from cnnlab.analysis.occlusion import occlusion
from cnnlab.analysis.results import AnalysisResult
from cnnlab.analysis.robustness import robustness

ANALYSES: dict[str, Callable[..., AnalysisResult]] = {
    "filters": filters,
    "activations": activations,
    "occlusion": occlusion,
    "adversarial": adversarial,
    "robustness": robustness,
    "attributions": attributions,
}

__all__ = [
    "ANALYSES",
    "AnalysisResult",
    "activations",
    "adversarial",
    "attributions",
    "filters",
    "occlusion",
    "robustness",
]
