"""One optimizer step on one batch: eagerly, or recorded once as a CUDA graph and replayed.

A batch-64 step of the report's small CNN launches a few dozen tiny kernels; on a GPU, launching them from Python
takes longer than running them, so the GPU idles between kernels. `GraphedStep` records the whole step (forward,
loss, backward, optimizer update) once with `torch.cuda.graph` and then replays it with one launch per batch. It
computes what the eager step computes up to float rounding: the libraries may pick other kernels while recording, and
a capturable Adam computes its bias correction in float32 on the device. A pass's last, smaller batch keeps the eager
step, since a graph replays only the shapes it was recorded with.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Eager steps before the recording: optimizers create their state (moments, momentum buffers) on their first step,
# and cuDNN picks its kernels on first use; neither may happen while a graph records. torch's CUDA-graph notes warm
# up on a side stream for the same reasons.
WARMUP_STEPS = 3


class TrainStep(Protocol):
    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        """Train on one batch; the batch's mean loss as a detached 0-d tensor on the device."""


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast when asked for; a no-op context for fp32. The cast cache is off: a graph being recorded may not
    hold cached casts, and each step enters a new context anyway, so the cache would never be hit."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16, cache_enabled=False)
    return contextlib.nullcontext()


@dataclass(frozen=True)
class EagerStep:
    """Forward, cross-entropy, backward and the optimizer's update, launched op by op."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    precision: str = "fp32"
    memory_format: torch.memory_format = torch.contiguous_format

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        with autocast(x.device, self.precision):
            loss = F.cross_entropy(self.model(x.contiguous(memory_format=self.memory_format)), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach().float()


def set_capturable(optimizer: torch.optim.Optimizer, capturable: bool) -> None:
    """Switch the optimizer's `capturable` mode (Adam, RMSprop: their step counters must live on the parameters'
    device for a graph to update them) and move existing step counters to where that mode keeps them.

    A checkpoint records the mode it was saved in, so a run resumed elsewhere (a GPU run on the CPU) is set back to
    what its own device needs. Optimizers without the setting (SGD) can be recorded as they are.
    """
    for group in optimizer.param_groups:
        if "capturable" not in group:
            continue
        group["capturable"] = capturable
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            if isinstance(state.get("step"), Tensor):
                on_device = capturable or group.get("fused")
                state["step"] = state["step"].to(device=param.device if on_device else "cpu", dtype=torch.float32)


@dataclass
class GraphedStep:
    """`EagerStep` recorded as one CUDA graph after `WARMUP_STEPS` eager steps, replayed for every full batch.

    Batches are copied into the graph's own input tensors; the returned loss is the graph's output tensor, overwritten
    by the next replay (add it up before then, as `train_epoch` does).
    """

    eager: EagerStep
    batch_size: int
    warmup_left: int = WARMUP_STEPS
    graph: torch.cuda.CUDAGraph | None = field(default=None, repr=False)
    inputs: tuple[Tensor, Tensor] | None = field(default=None, repr=False)
    loss: Tensor | None = field(default=None, repr=False)

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        if len(y) != self.batch_size:
            return self._uncaptured(x, y)
        if self.graph is None:
            if self.warmup_left > 0:
                self.warmup_left -= 1
                return self._warm_up(x, y)
            self._record(x, y)
        static_x, static_y = self.inputs
        static_x.copy_(x)
        static_y.copy_(y)
        self.graph.replay()
        return self.loss

    def _warm_up(self, x: Tensor, y: Tensor) -> Tensor:
        side, main = torch.cuda.Stream(x.device), torch.cuda.current_stream(x.device)
        side.wait_stream(main)
        with torch.cuda.stream(side):
            loss = self.eager(x, y)
        main.wait_stream(side)
        return loss

    def _record(self, x: Tensor, y: Tensor) -> None:
        """Record one step on copies of this batch; recording runs nothing, so the caller replays it for this batch."""
        set_capturable(self.eager.optimizer, True)
        self.inputs = (x.clone(memory_format=self.eager.memory_format), y.clone())
        self.eager.optimizer.zero_grad(set_to_none=True)  # the graph allocates the gradients in its own memory
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.loss = self.eager(*self.inputs)

    def _uncaptured(self, x: Tensor, y: Tensor) -> Tensor:
        """The eager step beside a graph: torch warns that a capturable optimizer runs slower uncaptured, which holds
        for these few small batches only."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*capturable=True.*")
            return self.eager(x, y)


def make_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    batch_size: int,
    precision: str = "fp32",
    memory_format: torch.memory_format = torch.contiguous_format,
    cuda_graph: bool = False,
) -> TrainStep:
    """The step `cnnlab-train` runs: graphed on a CUDA device when `cuda_graph` is set, eager everywhere else."""
    eager = EagerStep(model, optimizer, precision, memory_format)
    on_cuda = next(model.parameters()).device.type == "cuda"
    return GraphedStep(eager, batch_size) if cuda_graph and on_cuda else eager
