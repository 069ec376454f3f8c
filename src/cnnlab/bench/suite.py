"""Run a selection of comparisons, describe the machine, write bench.json and format the table people read."""

from __future__ import annotations

import importlib
import os
import platform
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from cnnlab.bench.registry import COMPARISONS, CPU_ONLY, OPT_IN, BenchContext
from cnnlab.bench.timing import Comparison
from cnnlab.device import describe_device, fast_bf16
from cnnlab.errors import ConfigError

# modules whose import registers comparisons
MODULES = ("cnnlab.bench.training", "cnnlab.bench.analyses", "cnnlab.bench.tracking")


def available() -> list[str]:
    for module in MODULES:
        importlib.import_module(module)
    return list(COMPARISONS)


def hardware() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "gpu": gpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.version.__version__,
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_fast_bf16": fast_bf16(torch.device("cpu")),
    }


def run_suite(ctx: BenchContext, names: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the named comparisons (when None, all but the opt-in ones) in registration order; returns what bench.json
    holds."""
    known = available()
    here = [n for n in known if ctx.device.type == "cpu" or n not in CPU_ONLY]  # all of them on the CPU
    chosen = list(names) if names else [n for n in here if n not in OPT_IN]
    if unknown := [n for n in chosen if n not in known]:
        raise ConfigError(f"only={unknown[0]!r} is not a comparison; choose from: {', '.join(known)}")
    if elsewhere := [n for n in chosen if n not in here]:
        raise ConfigError(
            f"only={elsewhere[0]!r} measures the CPU path and runs only with device=cpu; with device={ctx.device.type} "
            f"choose from: {', '.join(here)}"
        )
    results: list[Comparison] = []
    for name in chosen:
        results.extend(COMPARISONS[name](ctx))
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": describe_device(ctx.device),
        "hardware": hardware(),
        "settings": {
            "repeats": ctx.repeats,
            "warmup": ctx.warmup,
            "train_batches": ctx.train_batches,
            "sweep_batches": ctx.sweep_batches,
            "sweep_jobs": ctx.sweep_jobs,
            "untargeted_steps": ctx.untargeted_steps,
            "targeted_steps": ctx.targeted_steps,
            "tracking_epochs": ctx.tracking_epochs,
            "seed": ctx.seed,
        },
        "comparisons": [c.to_json() for c in results],
    }


def _figure(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def table(results: dict[str, Any]) -> str:
    """A Markdown table (the README's Performance section is this, pasted), under a line naming the machine and the
    device the comparisons ran on (bench.json files written before that setting existed ran on the CPU)."""
    hw = results["hardware"]
    lines = [
        f"{results['date'][:10]}, {hw['cpu']} ({hw['cpu_capability']}, "
        f"fast bf16: {'yes' if hw['cpu_fast_bf16'] else 'no'}),"
        f" {hw['cores']} cores, {hw['threads']} torch threads, torch {hw['torch']}"
        + (f", GPU {hw['gpu']}" if hw["gpu"] else "")
        + f"; comparisons on {results.get('device', 'cpu')}",
        "",
        "| comparison | unit | report-style | cnnlab | speed-up | target | same result |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for c in results["comparisons"]:
        speedup = "-" if c["speedup"] is None else f"{c['speedup']:.2f}x"
        same = {True: "yes", False: "NO", None: "-"}[c["same_result"]]
        lines.append(
            f"| {c['name']} | {c['unit']} | {_figure(c['baseline'])} | {_figure(c['cnnlab'])} | {speedup} "
            f"| {c['target']} | {same} |"
        )
    return "\n".join(lines)
