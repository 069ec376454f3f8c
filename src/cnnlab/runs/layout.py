"""One directory per configuration and seed, with a readable name and a hash so two configs never collide.

    <runs_dir>/<data>/<optimizer>[-bn]/e<epochs>-lr<lr>-bs<batch>[-n<subset>][-t<test_subset>]-<hash>/seed<seed>/

The hash covers every setting that can change the result (data, model, optimizer, trainer minus the keys below);
all seeds of one configuration sit side by side under the same parent, which is how the report groups them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Settings that change how a run executes but not what it computes.
NON_IDENTITY_KEYS = {
    "data": {"root", "download", "eval_batch_size"},
    "trainer": {"device", "progress", "num_threads", "cuda_graph", "figures"},
}
IDENTITY_GROUPS = ("data", "model", "optimizer", "trainer", "protocol")
# Settings added after runs were made: they count only when set, so that those runs keep their directories.
# trainer.eval_every counts because it changes what metrics.json records, though not the weights.
IDENTITY_WHEN_SET = {"data": {"test_subset"}, "trainer": {"eval_every"}}

CHECKPOINT = "checkpoint.pt"
LAST = "last.pt"
METRICS = "metrics.json"


def identity(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a resolved config that defines what a run computes, seed excluded."""
    out = {}
    for group in IDENTITY_GROUPS:
        value = cfg.get(group)
        if isinstance(value, Mapping):
            skip, when_set = NON_IDENTITY_KEYS.get(group, set()), IDENTITY_WHEN_SET.get(group, set())
            value = {k: v for k, v in value.items() if k not in skip and (v is not None or k not in when_set)}
        out[group] = value
    return out


def config_hash(cfg: Mapping[str, Any]) -> str:
    blob = json.dumps(identity(cfg), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def config_name(cfg: Mapping[str, Any]) -> str:
    """`<data>/<optimizer>[-bn]/e<epochs>-lr<lr>-bs<batch>[-n<subset>][-t<test_subset>]-<hash>`: one configuration,
    all seeds."""
    data, opt, trainer = cfg["data"], cfg["optimizer"], cfg["trainer"]
    family = opt["name"] + ("-bn" if cfg["model"].get("batch_norm") else "")
    settings = f"e{trainer['epochs']}-lr{opt['lr']:g}-bs{data['batch_size']}{subsets(data)}"
    return f"{data['name']}/{family}/{settings}-{config_hash(cfg)}"


def subsets(data: Mapping[str, Any]) -> str:
    """`-n<subset>` and `-t<test_subset>` where a run keeps fewer training or test images ("" where it keeps all)."""
    return (f"-n{data['subset']}" if data.get("subset") else "") + (
        f"-t{data['test_subset']}" if data.get("test_subset") else ""
    )


# the settings that tell configurations apart at a glance: metrics.json's `summary`, the report's results.csv
SUMMARY_SETTINGS = ("data", "optimizer", "lr", "batch_norm", "epochs", "batch_size", "subset", "test_subset")


def settings_of(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """`SUMMARY_SETTINGS`'s values in a resolved config."""
    data, opt, trainer = cfg["data"], cfg["optimizer"], cfg["trainer"]
    values = (data["name"], opt["name"], opt["lr"], bool(cfg["model"]["batch_norm"]), trainer["epochs"])
    values += (data["batch_size"], data["subset"], data.get("test_subset"))
    return dict(zip(SUMMARY_SETTINGS, values, strict=True))


def run_dir_for(cfg: Mapping[str, Any]) -> Path:
    return Path(cfg["paths"]["runs_dir"]) / config_name(cfg) / f"seed{cfg['seed']}"
