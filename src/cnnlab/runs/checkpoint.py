"""The one place checkpoints are written and read. Reading never unpickles code (`weights_only=True`)."""

from __future__ import annotations

import errno
import os
import pickle
import random
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab.atomic import write_with
from cnnlab.errors import CheckpointError, CnnlabError, first_line
from cnnlab.models import build_model

REQUIRED_KEYS = ("model", "config")


# torch.save's zip writer reports a short write (a full disk) as a RuntimeError without an errno
SHORT_WRITE = ("unexpected pos", "file write failed", "PytorchStreamWriter failed")


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write atomically; a full disk is an OSError(ENOSPC) naming the folder, whichever layer noticed it."""
    path = Path(path)
    try:
        return write_with(path, lambda tmp: torch.save(state, tmp))
    except RuntimeError as err:
        if any(marker in str(err) for marker in SHORT_WRITE):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path.parent)) from err
        raise


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a cnnlab checkpoint safely; any problem is a CheckpointError naming the file.

    `weights_only=True` lets the unpickler build only tensors and plain containers, so a crafted file cannot run code.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} does not exist" if not path.exists() else f"checkpoint {path} is not a file"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols of files it then refuses anyway
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, ... for truncated or foreign files
        if isinstance(err, pickle.UnpicklingError) and (blocked := re.search(r"GLOBAL ([\w.]+)", str(err))):
            raise CheckpointError(
                f"checkpoint {path} holds objects other than tensors and plain data (it references "
                f"{blocked.group(1)}); refused, since loading it could run code"
            ) from None
        raise CheckpointError(
            f"checkpoint {path} is truncated or not a torch checkpoint ({type(err).__name__})"
        ) from None
    if not isinstance(state, dict) or any(key not in state for key in REQUIRED_KEYS):
        raise CheckpointError(f"checkpoint {path} is not a cnnlab checkpoint (needs keys {', '.join(REQUIRED_KEYS)})")
    return state


def load_weights(module: torch.nn.Module | torch.optim.Optimizer, weights: dict[str, Any], path: str | Path) -> None:
    """`load_state_dict` whose mismatch (another architecture, e.g. BN weights into a plain model) names the file."""
    kind = type(module).__name__
    if isinstance(module, torch.nn.Module) and (mismatch := describe_mismatch(module.state_dict(), weights)):
        raise CheckpointError(f"checkpoint {path} does not fit this {kind}: {mismatch}")
    try:
        module.load_state_dict(weights)
    except (RuntimeError, ValueError, KeyError) as err:
        raise CheckpointError(f"checkpoint {path} does not fit this {kind}: {first_line(err)}") from None


def describe_mismatch(expected: dict[str, Any], found: dict[str, Any], most: int = 3) -> str:
    """The first keys a checkpoint lacks or adds, and the first shapes that differ, as one phrase ('' if none)."""
    parts = []
    if missing := [k for k in expected if k not in found]:
        parts.append(f"missing {', '.join(missing[:most])}{' ...' if len(missing) > most else ''}")
    if unexpected := [k for k in found if k not in expected]:
        parts.append(f"unexpected {', '.join(unexpected[:most])}{' ...' if len(unexpected) > most else ''}")
    shapes = [
        f"{k} {tuple(found[k].shape)} vs {tuple(v.shape)} here"
        for k, v in expected.items()
        if k in found and hasattr(found[k], "shape") and tuple(found[k].shape) != tuple(v.shape)
    ]
    if shapes:
        parts.append(f"shape of {'; '.join(shapes[:most])}{' ...' if len(shapes) > most else ''}")
    return "; ".join(parts)


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model a checkpoint was trained as, rebuilt from its stored config, with its weights; and the checkpoint."""
    state = load_checkpoint(path, map_location)
    try:
        model = build_model(state["config"]["model"])
    except (KeyError, TypeError, CnnlabError) as err:
        raise CheckpointError(f"checkpoint {path} has no usable model config ({err})") from None
    load_weights(model, state["model"], path)
    return model.to(map_location), state


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """Every random stream a run draws from, as tensors and plain lists (loadable with weights_only)."""
    np_state = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": [version, list(internal), gauss_next],
        "data_order": generator.get_state(),
    }


def restore_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    """Put every stream back as `rng_state` saved it. The states are taken to the CPU first: a checkpoint loaded with
    `map_location=cuda` (resuming on a GPU) holds them on the GPU, and torch accepts only CPU byte tensors as states."""
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.cpu().numpy().astype(np.uint32), *rest))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    generator.set_state(state["data_order"].cpu())
