"""Pick the torch device a run or analysis uses."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from cnnlab.checks import one_of
from cnnlab.errors import ConfigError


def resolve_device(name: str, setting: str = "trainer.device") -> torch.device:
    """`auto` takes CUDA when present; `cuda` without a GPU is an error rather than a silent CPU run."""
    one_of(setting, name, ("auto", "cpu", "cuda"))
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{setting}=cuda but no CUDA GPU is available; use {setting}=auto or {setting}=cpu")
    return torch.device(name)


def describe_device(device: torch.device) -> str:
    """How records name a device: `cpu`, or e.g. `cuda (NVIDIA H200)` with the GPU's model."""
    return str(device) if device.type != "cuda" else f"{device} ({torch.cuda.get_device_name(device)})"


def fast_bf16(device: torch.device) -> bool:
    """Whether bf16 math has fast kernels here: on CUDA from Ampere on; on a CPU when oneDNN has bf16 kernels
    (AVX-512 and newer). Elsewhere bf16 falls back to slow emulated paths, slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= (8, 0)  # Ampere and newer; older GPUs emulate bf16
    # torch has no public check for oneDNN's bf16 kernels (torch.backends.cpu names only the vector ISA, which misses
    # AVX-NE-CONVERT and ARM), so its own op is asked; a torch without the op reads as no bf16
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check()) if check is not None else False


def full_fp32_convolutions(device: torch.device) -> AbstractContextManager[Any]:
    """cuDNN convolutions in full fp32 on CUDA while the block runs (a no-op elsewhere).

    torch lets cuDNN round fp32 convolution inputs to TF32 (10-bit mantissa) by default, so a CUDA result differs from
    the CPU's by ~1e-3 relative instead of float32 rounding. Comparisons that check two computations against a float32
    tolerance run in here; training keeps torch's default."""
    if device.type != "cuda":
        return nullcontext()
    return torch.backends.cudnn.flags(
        enabled=torch.backends.cudnn.enabled,
        benchmark=torch.backends.cudnn.benchmark,
        deterministic=torch.backends.cudnn.deterministic,
        allow_tf32=False,
    )
