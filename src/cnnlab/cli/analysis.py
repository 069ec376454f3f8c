"""What the analysis commands share: one factory builds `cnnlab-filters`, `-activations`, `-occlusion`, `-adversarial`,
`-robustness` and `-attributions` from the analysis's name, its primary config `conf/<name>.yaml` and the registry in
`cnnlab.analysis`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig

from cnnlab.analysis import ANALYSES, AnalysisResult
from cnnlab.analysis.adversarial import format_table
from cnnlab.analysis.loading import run_or_checkpoint
from cnnlab.cli.entry import command
from cnnlab.config import to_plain
from cnnlab.errors import run_cli


def run_analysis(name: str, cfg: DictConfig) -> AnalysisResult:
    """Run analysis `name` on `run=` or `checkpoint=` with the config's options, reading data from `paths.data_dir`."""
    plain = to_plain(cfg)
    target = run_or_checkpoint(plain.get("run"), plain.get("checkpoint"))
    # the analysis leaves out the keys that say where to run it (`run`, `device`, `paths`, ...)
    return ANALYSES[name](target, plain, plain["device"], Path(plain["paths"]["data_dir"]))


def describe(result: AnalysisResult) -> str:
    """The lines a command prints: where the files are, and the adversarial table when there is one."""
    summary = result.summary
    lines = [f"{result.name}: {result.out_dir} (computed {summary['created_at']} in {summary['compute_time_s']:.1f}s)"]
    lines += [f"  {path.name}" for path in result.figures] + [f"  {name}" for name in summary["arrays"]]
    lines.append("  summary.json")
    if result.name == "adversarial":
        lines.append(format_table(summary))
        if "success_rate" in summary:
            lines.append(f"success rate {summary['success_rate']:.1%}")
        lines.append(f"mean MSE to source {summary['mean_mse_to_source']:.4f}")
    return "\n".join(lines)


def analysis_command(name: str) -> Callable[[], None]:
    """The `cnnlab-<name>` entry point: compose `conf/<name>.yaml`, run the analysis, print where its files are."""

    @command(f"cnnlab-{name}", name)
    def main(cfg: DictConfig) -> None:
        print(describe(run_cli(f"cnnlab-{name}", lambda: run_analysis(name, cfg))))

    return main
