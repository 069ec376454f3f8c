"""`run_bench(cfg, scratch)`: what `cnnlab-bench` calls. It checks the settings, composes the report's six runs (for
the sweep comparison), builds the benchmark context, runs the chosen comparisons and writes bench.json."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from omegaconf import DictConfig

from cnnlab.atomic import write_json
from cnnlab.bench.registry import BenchContext, BenchJob
from cnnlab.bench.suite import run_suite
from cnnlab.checks import boolean, one_of, positive_int, seed
from cnnlab.config import CONF_DIR, compose_config, to_plain
from cnnlab.data import ensure_files, get_spec
from cnnlab.device import resolve_device
from cnnlab.models import MODELS
from cnnlab.training.optimizers import check_optimizer

# quick=true: every comparison on a few batches, one timed round; its keys are the context's repeat and size settings
# that come from conf/bench.yaml
QUICK = {
    "repeats": 1,
    "warmup": 1,
    "train_batches": 3,
    "sweep_batches": 2,
    "memory_subset": 256,
    "untargeted_steps": 2,
    "targeted_steps": 2,
    "tracking_epochs": 1,
}
POSITIVE = ("repeats", "train_batches", "sweep_batches", "untargeted_steps", "targeted_steps", "tracking_epochs")


def report_jobs() -> list[BenchJob]:
    """The six runs of `experiment=report`, composed from conf/experiment/report/ as `cnnlab-train` composes them."""
    jobs = []
    for path in sorted((CONF_DIR / "experiment" / "report").glob("*.yaml")):
        job = to_plain(compose_config("train", [f"+experiment/report={path.stem}"]))
        jobs.append(BenchJob(path.stem, job["optimizer"], job["model"]))
    return jobs


def output_path(cfg: DictConfig) -> Path:
    """bench.json, or bench-quick.json for quick=true so a check never replaces real figures."""
    return Path(cfg.output_dir) / ("bench-quick.json" if cfg.quick else "bench.json")


def run_bench(cfg: DictConfig, scratch: Path) -> dict:
    """Check the settings, build the context, run the chosen comparisons and write the results."""
    plain = to_plain(cfg)
    seed("seed", cfg.seed)
    boolean("quick", cfg.quick)
    boolean("model.batch_norm", cfg.model.batch_norm)
    one_of("model.name", cfg.model.name, MODELS)
    check_optimizer(cfg.optimizer)
    settings = {key: plain[key] for key in QUICK}
    if cfg.quick:
        settings.update(QUICK)
    for key in POSITIVE:
        positive_int(key, settings[key])
    for key, value in (("memory_subset", settings["memory_subset"]), ("sweep_jobs", cfg.sweep_jobs)):
        if value is not None:
            positive_int(key, value)
    if cfg.threads is not None:
        torch.set_num_threads(positive_int("threads", cfg.threads))
    device = resolve_device(cfg.device, "device")
    spec = get_spec(cfg.data.name)
    ensure_files(spec, cfg.data.root, download=cfg.data.download)
    ctx = BenchContext(
        data_root=Path(cfg.data.root),
        data_name=spec.name,
        optimizer=plain["optimizer"],
        model=plain["model"],
        jobs=report_jobs(),
        batch_size=positive_int("data.batch_size", cfg.data.batch_size),
        sweep_jobs=cfg.sweep_jobs or len(os.sched_getaffinity(0)),
        seed=cfg.seed,
        scratch=scratch,
        device=device,
        **settings,
    )
    results = run_suite(ctx, plain["only"])
    write_json(output_path(cfg), results)
    return results
