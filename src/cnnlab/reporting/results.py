"""One configuration's seeds reduced to what the tables show: accuracy and time over seeds, time to target, status."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cnnlab.reporting.collect import Run
from cnnlab.reporting.stats import Summary, spread, summarize

PERCENT = (0.0, 100.0)  # the range of an accuracy, which its interval over seeds is cut to


@dataclass(frozen=True)
class ConfigResult:
    name: str
    runs: list[Run]
    finished: list[Run]
    test_accuracy: Summary | None
    val_accuracy: Summary | None  # final-epoch validation accuracy: the checkpoint's, used to choose the best
    train_time: Summary | None
    reached: list[tuple[int, float]]  # (epoch, seconds) for each finished seed that reached the target
    target: float

    @property
    def config(self) -> dict[str, Any]:
        return next((r.metrics["config"] for r in self.runs if "config" in r.metrics), {})

    @property
    def params(self) -> dict[str, int]:
        return next((r.metrics["params"] for r in self.runs if "params" in r.metrics), {})

    def with_status(self, status: str) -> list[Run]:
        return [r for r in self.runs if r.status == status]

    def shown(self, preferred_seeds: Sequence[int]) -> Run | None:
        """The finished run whose per-seed results are shown: the first expected seed that finished, else the first."""
        by_seed = {r.seed: r for r in self.finished}
        return next((by_seed[s] for s in preferred_seeds if s in by_seed), self.finished[0] if self.finished else None)

    def accuracy(self) -> str:
        """Test accuracy over seeds as the tables show it; when no seed finished, the other statuses (a diverged run
        is not a number), or "missing"."""
        if self.test_accuracy:
            return spread(self.test_accuracy)
        return " / ".join(sorted({r.status for r in self.runs})) or "missing"

    @property
    def best_seed_run(self) -> Run | None:
        return max(self.finished, key=lambda r: r.metrics["final_val_accuracy"], default=None)

    def time_to_target(self) -> str:
        """First epoch and seconds reaching the target validation accuracy (means over the seeds that reached it)."""
        n, k = len(self.finished), len(self.reached)
        if not n:
            return "—"
        if not k:
            return "not reached"
        epoch = sum(e for e, _ in self.reached) / k
        seconds = sum(s for _, s in self.reached) / k
        text = f"epoch {epoch:g}, {seconds:.1f} s" if k == 1 else f"epoch {epoch:.1f}, {seconds:.1f} s"
        return text if n == 1 else f"{text} ({k}/{n} seeds)"


def summarize_config(name: str, runs: list[Run], target: float, confidence: float) -> ConfigResult:
    finished = [r for r in runs if r.finished]

    def over_seeds(values: list[float], bounds: tuple[float, float] | None = None) -> Summary | None:
        return summarize(values, confidence, bounds) if values else None

    reached = [hit for r in finished if (hit := r.reaches(target)) is not None]
    return ConfigResult(
        name=name,
        runs=runs,
        finished=finished,
        test_accuracy=over_seeds([r.metrics["test"]["accuracy"] for r in finished], PERCENT),
        val_accuracy=over_seeds([r.metrics["final_val_accuracy"] for r in finished], PERCENT),
        train_time=over_seeds([r.metrics["train_time_s"] for r in finished]),
        reached=reached,
        target=target,
    )
