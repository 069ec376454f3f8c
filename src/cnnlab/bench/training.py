"""Training comparisons: the report's DataLoader loop against cnnlab's training step, one run and a six-run sweep,
plus the peak memory of a real 1-epoch run.

Both sides start from the same weights and see the same batches in the same order (the first N training images,
shuffled by equally seeded generators), so their loss trajectories must agree up to float rounding.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from joblib import Parallel, delayed
from omegaconf import DictConfig
from torch import nn
from torch.utils.data import DataLoader, Sampler, Subset
from torchvision import transforms

from cnnlab.bench.registry import BenchContext, BenchJob, register
from cnnlab.bench.timing import Comparison, interleaved
from cnnlab.config import compose_config
from cnnlab.data import Batches, Split, get_spec
from cnnlab.data.splits import read_raw, to_float
from cnnlab.errors import CnnlabError
from cnnlab.models import build_model
from cnnlab.runs.record import TIMINGS
from cnnlab.runtime import keep_freed_memory
from cnnlab.training.loop import train_epoch
from cnnlab.training.optimizers import build_optimizer
from cnnlab.training.runner import train
from cnnlab.training.step import make_step

# channels_last changes float rounding only: per-pass mean losses agree to ~1e-6 after one pass of 100 batches, and
# the rounding differences compound over hundreds of Adam steps to ~6e-3 (relative, on a loss near 0.1) by the fourth
FP32_RTOL = 1e-2
BF16_RTOL = 5e-2  # bf16 rounds activations and gradients: same work, visibly different last digits
CHANNELS_LAST = torch.channels_last
IMPLEMENTATION_KEYS = ("fused", "foreach")  # optimizer settings that choose how, not what, torch computes


def report_dataset(ctx: BenchContext, n_images: int) -> Subset:
    """The report's dataset: torchvision's class with ToTensor, decoding each sample when it is drawn."""
    dataset = get_spec(ctx.data_name).torchvision_class(str(ctx.data_root), train=True, transform=transforms.ToTensor())
    return Subset(dataset, range(n_images))


class OnePermutationSampler(Sampler[int]):
    """What `shuffle=True` gives a DataLoader (a fresh random permutation per pass), drawn from a seeded generator.

    torch's RandomSampler draws a second, empty permutation at the end of each pass, which would put its generator
    out of step with cnnlab's `Batches` after the first pass; this draws exactly one, so both sides see the same
    batches in every pass.
    """

    def __init__(self, n: int, seed: int):
        self.n, self.generator = n, torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        return iter(torch.randperm(self.n, generator=self.generator).tolist())


def report_loader(dataset: Subset, batch_size: int, seed: int) -> DataLoader:
    """`DataLoader(dataset, batch_size=64, shuffle=True)`, with the shuffle seeded as cnnlab's is."""
    return DataLoader(dataset, batch_size=batch_size, sampler=OnePermutationSampler(len(dataset), seed))


def report_pass(model: nn.Module, optimizer_cfg: Mapping[str, Any], loader: DataLoader) -> Callable[[], float]:
    """The report's loop, one pass per call: contiguous NCHW tensors, each batch moved to the model's device as it is
    drawn, `loss.item()` after every batch. Its optimizer has the same settings with torch's default implementation
    (cnnlab's may pick a fused one)."""
    settings = {k: v for k, v in optimizer_cfg.items() if k not in IMPLEMENTATION_KEYS}
    optimizer = build_optimizer(settings, model.parameters())
    device = next(model.parameters()).device

    def one_pass() -> float:
        model.train()
        running = 0.0
        for batch in loader:
            images, labels = (t.to(device) for t in batch)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(images), labels)
            loss.backward()
            optimizer.step()
            running += loss.item()
        return running / len(loader)

    return one_pass


def cnnlab_pass(
    model: nn.Module, optimizer_cfg: Mapping[str, Any], split: Split, batch_size: int, seed: int, precision: str
) -> Callable[[], float]:
    """One pass of cnnlab's step exactly as `cnnlab-train` builds it (channels_last, and graphed on cuda) over the
    batches `report_loader` draws with the same seed."""
    model = model.to(memory_format=CHANNELS_LAST)
    optimizer = build_optimizer(optimizer_cfg, model.parameters())
    options = {"precision": precision, "memory_format": CHANNELS_LAST, "cuda_graph": True}
    step = make_step(model, optimizer, batch_size=batch_size, **options)
    batches = Batches(split, batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
    return lambda: train_epoch(model, batches, step).item()


def first_images(ctx: BenchContext, n_images: int) -> Split:
    """The same images as `report_loader`, converted once as ToTensor would."""
    return to_float(read_raw(get_spec(ctx.data_name), ctx.data_root, train=True).take(slice(0, n_images)))


def seeded_model(model_cfg: Mapping[str, Any], seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(model_cfg)


def losses_agree(reference: Sequence[float], other: Sequence[float], rtol: float) -> dict[str, Any]:
    deviation = max(abs(a - b) / max(abs(a), 1e-12) for a, b in zip(reference, other, strict=True))
    return {"same": deviation <= rtol, "max_rel_dev": deviation, "rtol": rtol}


@register("training")
def training_throughput(ctx: BenchContext) -> list[Comparison]:
    """Images/s of one run at batch 64: the report's loop vs cnnlab fp32 (default) and cnnlab bf16 (opt-in), on
    `ctx.device` (cnnlab's images sit there for the whole pass, as `cnnlab-train` keeps them)."""
    n_images = ctx.train_batches * ctx.batch_size
    loader = report_loader(report_dataset(ctx, n_images), ctx.batch_size, ctx.seed)
    split = first_images(ctx, n_images).to(ctx.device)
    base_model = seeded_model(ctx.model, ctx.seed).to(ctx.device)
    sides = {"report": report_pass(copy.deepcopy(base_model), ctx.optimizer, loader)}
    for precision in ("fp32", "bf16"):
        sides[precision] = cnnlab_pass(
            copy.deepcopy(base_model), ctx.optimizer, split, ctx.batch_size, ctx.seed, precision
        )
    timed = interleaved(sides, ctx.repeats, ctx.warmup, sync=ctx.synchronize)
    rate = {name: n_images / t.median for name, t in timed.items()}
    reference = timed["report"].outputs
    common = {
        "device": str(ctx.device),
        "batch_size": ctx.batch_size,
        "images_per_pass": n_images,
        "optimizer": ctx.optimizer["name"],
        "batch_norm": bool(ctx.model.get("batch_norm")),
        "threads": torch.get_num_threads(),
        "report_loss_per_pass": reference,
    }
    out = []
    for precision, rtol, target in (("fp32", FP32_RTOL, ">= 1.3x"), ("bf16", BF16_RTOL, ">= 2x")):
        check = losses_agree(reference, timed[precision].outputs, rtol)
        out.append(
            Comparison(
                name=f"training step, {precision}",
                unit="images/s",
                baseline=rate["report"],
                cnnlab=rate[precision],
                same_result=check.pop("same"),
                target=target,
                details={**common, "cnnlab_loss_per_pass": timed[precision].outputs, **check},
            )
        )
    return out


def report_job_pass(job: BenchJob, dataset: Subset, batch_size: int, seed: int) -> float:
    return report_pass(seeded_model(job.model, seed), job.optimizer, report_loader(dataset, batch_size, seed))()


def cnnlab_job_pass(job: BenchJob, split: Split, batch_size: int, seed: int, threads: int) -> float:
    """One sweep job in a worker process set up as `launcher=joblib` sets up its jobs: `threads` torch threads and the
    entry points' memory settings; cnnlab's step over the same batches."""
    keep_freed_memory()
    torch.set_num_threads(threads)
    return cnnlab_pass(seeded_model(job.model, seed), job.optimizer, split, batch_size, seed, "fp32")()


@register("sweep", cpu_only=True)
def sweep_throughput(ctx: BenchContext) -> list[Comparison]:
    """The report's six runs: report-style loops one after another vs one-thread cnnlab jobs in parallel processes.

    The parallel side uses joblib's loky processes, as `launcher=joblib` does; the warm-up round starts them.
    """
    n_images = ctx.sweep_batches * ctx.batch_size
    dataset, split = report_dataset(ctx, n_images), first_images(ctx, n_images)
    sides = {
        "sequential": lambda: [report_job_pass(job, dataset, ctx.batch_size, ctx.seed) for job in ctx.jobs],
        "parallel": lambda: Parallel(n_jobs=ctx.sweep_jobs, backend="loky")(
            delayed(cnnlab_job_pass)(job, split, ctx.batch_size, ctx.seed, 1) for job in ctx.jobs
        ),
    }
    timed = interleaved(sides, ctx.repeats, ctx.warmup)
    total = n_images * len(ctx.jobs)
    reference = [loss for losses in timed["sequential"].outputs for loss in losses]
    check = losses_agree(reference, [loss for losses in timed["parallel"].outputs for loss in losses], FP32_RTOL)
    return [
        Comparison(
            name=f"sweep of {len(ctx.jobs)} runs",
            unit="images/s",
            baseline=total / timed["sequential"].median,
            cnnlab=total / timed["parallel"].median,
            same_result=check.pop("same"),
            target=">= 1.8x",
            details={
                "jobs": [job.name for job in ctx.jobs],
                "images_per_job": n_images,
                "parallel_jobs": ctx.sweep_jobs,
                "threads_per_parallel_job": 1,
                "sequential_threads": torch.get_num_threads(),
                **check,
            },
        )
    ]


class BenchError(CnnlabError):
    """A benchmark step that could not run (its log says why)."""


@register("memory", cpu_only=True)
def peak_memory(ctx: BenchContext) -> list[Comparison]:
    """Peak resident memory of a real 1-epoch `cnnlab-train` run on the CPU, read from the kernel's accounting of that
    child (on a machine with a GPU, `trainer.device=auto` would train there and measure something else)."""
    out_dir = ctx.scratch / "memory-run"
    cmd = [
        sys.executable,
        "-m",
        "cnnlab.cli.train",
        "trainer.epochs=1",
        "trainer.progress=false",
        "trainer.device=cpu",
        f"seed={ctx.seed}",
        f"paths.output_dir={out_dir}",
        f"paths.data_dir={ctx.data_root}",
    ]
    if ctx.memory_subset is not None:
        cmd.append(f"data.subset={ctx.memory_subset}")
    log_path = ctx.scratch / "memory-run.log"
    out_dir.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log_path.read_text().strip().splitlines()[-1:]
        raise BenchError(
            f"the 1-epoch run for the memory measurement failed ({tail[0] if tail else proc.returncode}); "
            f"see {log_path}"
        )
    finished = any(Path(p).read_text().count('"status": "finished"') for p in out_dir.glob("runs/**/metrics.json"))
    return [
        Comparison(
            name="peak memory, 1-epoch run",
            unit="MB",
            baseline=None,
            cnnlab=usage.ru_maxrss / 1024,  # Linux reports KiB
            same_result=finished,
            higher_is_better=False,
            target="<= 1500 MB",
            details={"training_images": ctx.memory_subset or "all", "command": " ".join(cmd[1:])},
        )
    ]


def _epoch_config(ctx: BenchContext, *extra: str) -> DictConfig:
    """One epoch of `cnnlab-train` on the bench's data and model (`subset_overrides`)."""
    overrides = [
        f"paths.output_dir={ctx.scratch / 'eval_every'}",
        f"data={ctx.data_name}",
        f"data.root={ctx.data_root}",
        f"model.batch_norm={str(bool(ctx.model.get('batch_norm'))).lower()}",
        f"trainer.device={ctx.device.type}",
        "trainer.epochs=1",
        "trainer.progress=false",
        "overwrite=true",
        f"seed={ctx.seed}",
    ]
    return compose_config("train", [*overrides, *subset_overrides(ctx), *extra])


def subset_overrides(ctx: BenchContext) -> list[str]:
    """With `memory_subset`, that many training images and a validation split a fifth of it (the full split's ratio,
    50,000 to 10,000), so the cost ratio stays the real one; none without it."""
    if not ctx.memory_subset:
        return []
    return [f"data.subset={ctx.memory_subset}", f"data.val_size={max(ctx.memory_subset // 5, 1)}"]


def untimed_history(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A run's history without its timings (and validations during the epoch): what two runs of the same training
    must agree on."""
    return [{k: v for k, v in h.items() if k not in TIMINGS and k != "evals"} for h in metrics["history"]]


@register("eval_every")
def validation_during_the_epoch(ctx: BenchContext) -> list[Comparison]:
    """Seconds of one epoch of `cnnlab-train` (its training pass and validation) without and with a validation half
    way through as well (`trainer.eval_every=0.5`, the optimizer comparison's default): the price of time to target at
    half-epoch resolution. Both train the same weights, so the histories must agree but for the extra points."""
    sides = {"end": _epoch_config(ctx), "half": _epoch_config(ctx, "trainer.eval_every=0.5")}
    timed = interleaved(
        {k: lambda c=c: train(c, test=False).metrics for k, c in sides.items()}, ctx.repeats, ctx.warmup
    )
    seconds = {k: float(np.median([m["train_time_s"] for m in t.outputs])) for k, t in timed.items()}
    last = {k: t.outputs[-1] for k, t in timed.items()}
    return [
        Comparison(
            name="validation during the epoch, eval_every=0.5",
            unit="s per epoch",
            baseline=seconds["end"],
            cnnlab=seconds["half"],
            same_result=untimed_history(last["end"]) == untimed_history(last["half"]),
            higher_is_better=False,
            target="overhead <= 15% (speed-up >= 0.87x)",
            details={
                "device": str(ctx.device),
                "training_images": ctx.memory_subset or "all",
                "validations_per_epoch": 1 + len(last["half"]["history"][0]["evals"]),
                "overhead": round(seconds["half"] / seconds["end"] - 1, 4),
            },
        )
    ]
