"""The measurements of `bash scripts/gpu_check.sh` on a machine with a CUDA GPU (that script sets up the packages and
the data, then runs this). Each step runs in its own process group under a time limit that the check's deadline also
caps, and the summary is rewritten after every step, so a check stopped at any point keeps what it measured so far.

    python3 scripts/gpu_check.py OUT_DIR --deadline UNIX_SECONDS

Steps, in this order: the CUDA tests (tests/test_cuda.py); a 5-epoch run of cnnlab-train's defaults (the report's
Adam run), of the same validating every half epoch, and of SGD with batch norm on cuda; cnnlab-robustness and
cnnlab-attributions on the Adam run; the report's six configurations x five seeds as $GPU_CHECK_JOBS
(default 10) processes sharing the GPU (launcher=joblib); cnnlab-bench on cuda; occlusion maps on the CPU against
CUDA, in fp32 and with torch's default TF32 convolutions; seed 0 of the six configurations one at a time (the basic
launcher) in the time that is left, and how far those runs are from the same runs of the parallel sweep. OUT_DIR
receives gpu_check.json (every figure, each step's command, time and outcome), gpu_check.md (the tables), bench.json
(cnnlab-bench's own) and steps.log (every step's output).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
RESERVE_S = 10  # kept back from every step for writing the summary before the deadline
CONFIGURATIONS = 6  # the report's
SEEDS = (0, 1, 2, 3, 4)
REPORT_RUNS = CONFIGURATIONS * len(SEEDS)  # the 30 runs of the sweep target
# the sweep as processes sharing the GPU, one torch thread each. The expectation to check: a batch-64 step of this
# CNN is bound by one process launching its kernels, so processes side by side fill the GPU that one leaves idle;
# 10 jobs run the 30 runs in three waves
PARALLEL_SWEEP = ["launcher=joblib", f"hydra.launcher.n_jobs={os.environ.get('GPU_CHECK_JOBS', 10)}"]
TRAIN = [sys.executable, "-m", "cnnlab.cli.train", "trainer.device=cuda", "trainer.progress=false"]
# the comparison validates every half epoch (conf/experiment/comparison.yaml): its cost beside the plain Adam run
FIVE_EPOCH_RUNS = {
    "adam": [],
    "adam_eval": ["trainer.eval_every=0.5"],
    "sgd_bn": ["optimizer=sgd", "model.batch_norm=true"],
}
FIVE_EPOCH_TITLES = {
    "adam": "Adam (cnnlab-train's defaults)",
    "adam_eval": "Adam, validating every half epoch (the comparison's trainer.eval_every=0.5)",
    "sgd_bn": "SGD + batch norm",
}
# the same configurations and seed (42) on a CPU: docs/performance.md, scripts/reproduce.sh on an AVX-512 EPYC,
# 2026-11-30 (on an AVX2 one Adam gave 98.74: rounding compounds over 5 epochs)
# (validating during the epoch changes no weight, so the Adam run's figure holds for both)
CPU_TEST_ACCURACY = {"adam": 98.94, "adam_eval": 98.94, "sgd_bn": 97.13}
# the Captum commands at their defaults on the 5-epoch Adam run; on the 2-core CPU robustness computed in 12-13 s
CAPTUM_COMMANDS = {"robustness": "cnnlab.cli.robustness", "attributions": "cnnlab.cli.attributions"}
BENCH_ONLY = "only=[training,occlusion,untargeted,targeted]"
OCCLUSION = {"sizes": [5], "stride": 1, "images": 10}


def machine() -> dict[str, Any]:
    from cnnlab.bench.suite import hardware

    props = torch.cuda.get_device_properties(0)
    smi = shutil.which("nvidia-smi")
    driver = ""
    if smi:
        query = [smi, "--query-gpu=driver_version", "--format=csv,noheader"]
        driver = subprocess.run(query, capture_output=True, text=True, timeout=30).stdout.strip()
    return {
        "gpu": torch.cuda.get_device_name(0),
        "capability": ".".join(map(str, torch.cuda.get_device_capability(0))),
        "gpu_memory_gib": round(props.total_memory / 2**30, 1),
        "driver": driver,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "python": platform.python_version(),
        "cpu_cores": len(os.sched_getaffinity(0)),
        "cpu": hardware()["cpu"],
    }


class Check:
    """The steps' outcomes and figures, written to OUT_DIR after each step."""

    def __init__(self, out: Path, deadline: float):
        self.out, self.deadline, self.started = out, deadline, time.time()
        self.scratch = Path(tempfile.mkdtemp(prefix="gpu-check-"))
        self.log = out / "steps.log"
        self.summary: dict[str, Any] = {
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(),
            "budget_s": round(deadline - self.started),
            "steps": {},
            "figures": {},
        }
        self.save()

    def run(self, name: str, argv: list[str], limit_s: float) -> dict[str, Any]:
        """`argv` in its own process group, killed (with its children) at the step's limit; its output goes to
        steps.log. Returns and records the step's command, seconds, exit status and whether it ran out of time."""
        limit = min(limit_s, self.deadline - time.time() - RESERVE_S)
        step: dict[str, Any] = {"command": " ".join(argv[1:]), "limit_s": round(limit)}
        if limit < 15:
            step.update(skipped="no time left before the deadline")
            return self.record(name, step)
        print(f"[gpu_check] {name}: {step['command']} (at most {limit:.0f} s)", flush=True)
        start = time.monotonic()
        with self.log.open("a") as log:
            log.write(f"\n===== {name}: {step['command']}\n")
            log.flush()
            proc = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                proc.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                step["timed_out"] = True
        step.update(seconds=round(time.monotonic() - start, 1), returncode=proc.returncode)
        if proc.returncode != 0:
            step["log_tail"] = self.log.read_text(errors="replace")[-3000:]
        print(f"[gpu_check] {name}: exit {proc.returncode} after {step['seconds']} s", flush=True)
        return self.record(name, step)

    def record(self, name: str, step: dict[str, Any]) -> dict[str, Any]:
        self.summary["steps"][name] = step
        self.save()
        return step

    def figure(self, name: str, value: Any) -> None:
        self.summary["figures"][name] = value
        self.save()

    def save(self) -> None:
        self.summary["took_s"] = round(time.time() - self.started)
        (self.out / "gpu_check.json").write_text(json.dumps(self.summary, indent=2) + "\n")
        (self.out / "gpu_check.md").write_text(markdown(self.summary))


def finished_runs(output_dir: Path) -> dict[str, dict[str, Any]]:
    """The metrics of the finished runs under `output_dir`, by run directory (relative to it)."""
    runs = {str(p.parent.relative_to(output_dir)): p for p in sorted(output_dir.glob("runs/**/metrics.json"))}
    metrics = {run: json.loads(p.read_text()) for run, p in runs.items()}
    return {run: m for run, m in metrics.items() if m.get("status") == "finished"}


def test_figures(junit: Path) -> dict[str, Any]:
    """Counts, failures and per-test seconds from pytest's JUnit XML."""
    cases = ET.parse(junit).getroot().iter("testcase")
    outcome = {"passed": 0, "failed": 0, "skipped": 0}
    failures, seconds = [], {}
    for case in cases:
        name = case.get("name", "?")
        seconds[name] = round(float(case.get("time", 0)), 1)
        problem = case.find("failure") if case.find("failure") is not None else case.find("error")
        if problem is not None:
            outcome["failed"] += 1
            failures.append({"test": name, "message": (problem.get("message") or "")[:500]})
        elif case.find("skipped") is not None:
            outcome["skipped"] += 1
        else:
            outcome["passed"] += 1
    return {**outcome, "failures": failures, "seconds": seconds}


def run_tests(check: Check) -> None:
    junit = check.scratch / "junit.xml"
    argv = [sys.executable, "-m", "pytest", "-v", "-m", "cuda", "tests/test_cuda.py", "-p", "no:cacheprovider"]
    check.run("tests", [*argv, f"--junitxml={junit}"], 240)
    if junit.is_file():
        check.figure("tests", test_figures(junit))


def five_epoch_runs(check: Check) -> Path | None:
    """The 5-epoch runs; returns the Adam run's directory (for the occlusion comparison) when it finished."""
    adam_dir = None
    for label, overrides in FIVE_EPOCH_RUNS.items():
        out = check.scratch / f"e5-{label}"
        step = check.run(f"e5_{label}", [*TRAIN, *overrides, f"paths.output_dir={out}"], 90)
        runs = list(finished_runs(out).values())
        if not runs:
            continue
        m = runs[0]
        check.figure(
            f"e5_{label}",
            {
                "title": FIVE_EPOCH_TITLES[label],
                "device": m["device"],
                "epochs": len(m["history"]),
                "train_time_s": m["train_time_s"],
                "images_per_s": m["images_per_s"],
                "epoch_time_s": [h["epoch_time_s"] for h in m["history"]],
                "test_accuracy": m["test"]["accuracy"],
                "cpu_test_accuracy": CPU_TEST_ACCURACY[label],
                "command_s": step.get("seconds"),
            },
        )
        if label == "adam":
            adam_dir = next(out.glob("runs/**/metrics.json")).parent
    return adam_dir


def run_bench(check: Check) -> None:
    out = check.scratch / "bench-out"
    argv = [sys.executable, "-m", "cnnlab.cli.bench", "device=cuda", "quick=false", BENCH_ONLY]
    check.run("bench", [*argv, f"paths.output_dir={out}"], 150)
    written = out / "bench" / "bench.json"
    if written.is_file():
        shutil.copy(written, check.out / "bench.json")
        results = json.loads(written.read_text())
        keys = ("name", "unit", "baseline", "cnnlab", "speedup", "target", "same_result")
        comparisons = [{k: c[k] for k in keys} for c in results["comparisons"]]
        check.figure("bench", {"device": results["device"], "comparisons": comparisons})


def captum_steps(check: Check, run_dir: Path | None) -> None:
    """cnnlab-robustness and cnnlab-attributions at their defaults on the 5-epoch Adam run, on cuda: each command's
    seconds (start-up included) and its computation's (from the analysis's summary.json)."""
    for name, module in CAPTUM_COMMANDS.items():
        if run_dir is None:
            check.record(name, {"skipped": "the 5-epoch Adam run did not finish"})
            continue
        step = check.run(name, [sys.executable, "-m", module, f"run={run_dir}", "device=cuda"], 90)
        summaries = sorted(run_dir.glob(f"analysis/{name}/*/summary.json"))
        if not summaries:
            continue
        summary = json.loads(summaries[0].read_text())
        figure = {"command_s": step.get("seconds"), "compute_s": summary.get("compute_time_s")}
        if name == "robustness":
            figure |= {"epsilons": summary["epsilons"], "accuracy": summary["accuracy"]}
        check.figure(name, figure)


def occlusion_step(check: Check, run_dir: Path | None) -> None:
    if run_dir is None:
        check.record("occlusion_cpu_vs_cuda", {"skipped": "the 5-epoch Adam run did not finish"})
        return
    result = check.scratch / "occlusion.json"
    argv = [sys.executable, str(Path(__file__).resolve()), "--occlusion", str(run_dir), str(result)]
    check.run("occlusion_cpu_vs_cuda", argv, 90)
    if result.is_file():
        check.figure("occlusion_cpu_vs_cuda", json.loads(result.read_text()))


def occlusion_deviation(run_dir: Path, result: Path) -> None:
    """Occlusion maps of one checkpoint on the CPU, on CUDA in full fp32 and on CUDA with torch's defaults (TF32
    convolutions): the largest probability differences from the CPU's, and each one's compute time."""
    import numpy as np

    from cnnlab.analysis import ANALYSES
    from cnnlab.device import full_fp32_convolutions

    cuda = torch.device("cuda")
    maps, seconds = {}, {}
    for label, device in (("cpu", "cpu"), ("cuda_fp32", "cuda"), ("cuda_default", "cuda")):
        copy = shutil.copytree(run_dir, result.parent / f"occlusion-{label}")
        precision = full_fp32_convolutions(cuda if label == "cuda_fp32" else torch.device("cpu"))
        with precision:
            done = ANALYSES["occlusion"](copy, OCCLUSION, device=device)
        with np.load(done.out_dir / "maps.npz") as npz:
            maps[label] = npz["maps_k5"]
        seconds[label] = done.summary["compute_time_s"]
    deviation = {label: float(np.abs(maps[label] - maps["cpu"]).max()) for label in ("cuda_fp32", "cuda_default")}
    figures = {"settings": OCCLUSION, "max_abs_difference": deviation, "compute_s": seconds}
    result.write_text(json.dumps({**figures, "tf32_by_default": torch.backends.cudnn.allow_tf32}, indent=2))


def run_sweep(
    check: Check, name: str, launcher: list[str], limit_s: float, seeds: tuple[int, ...] = SEEDS
) -> dict[str, dict[str, Any]]:
    """The report's configurations on `seeds` through `launcher` within `limit_s`; the finished runs' metrics by run
    directory."""
    out = check.scratch / name
    argv = [*TRAIN, "experiment=report", f"seed={','.join(map(str, seeds))}", *launcher, f"paths.output_dir={out}"]
    step = check.run(name, argv, limit_s)
    if "skipped" in step:
        return {}
    runs = finished_runs(out)
    by_config: dict[str, list[float]] = {}
    for m in runs.values():
        label = m["summary"]["optimizer"] + ("+BN" if m["summary"]["batch_norm"] else "")
        by_config.setdefault(label, []).append(m["test"]["accuracy"])
    n, expected = len(runs), CONFIGURATIONS * len(seeds)
    pace = step["seconds"] / n if n else None  # seconds per run, start-up included
    figures = {
        "launcher": " ".join(launcher) or "basic (one run at a time)",
        "finished": n,
        "expected": expected,
        "seconds": step.get("seconds"),
        "timed_out": bool(step.get("timed_out")),
        "train_time_s_per_run": round(statistics.fmean(m["train_time_s"] for m in runs.values()), 2) if n else None,
        # the report's 30 runs at the pace of those that finished, when the sweep was cut short or smaller
        "estimated_s_for_30": round(pace * REPORT_RUNS) if pace and n < REPORT_RUNS else None,
        "test_accuracy_by_config": {k: round(statistics.fmean(v), 2) for k, v in sorted(by_config.items())},
        "seeds_by_config": {k: len(v) for k, v in sorted(by_config.items())},
    }
    check.figure(name, figures)
    return runs


def compare_sweeps(check: Check, parallel: dict[str, dict[str, Any]], sequential: dict[str, dict[str, Any]]) -> None:
    """How far the runs trained side by side are from the same runs trained one at a time: test accuracy and final
    validation loss of every run directory that both sweeps finished."""
    both = sorted(parallel.keys() & sequential.keys())
    if not both:
        return
    accuracy = [abs(parallel[k]["test"]["accuracy"] - sequential[k]["test"]["accuracy"]) for k in both]
    loss = [abs(parallel[k]["history"][-1]["val_loss"] - sequential[k]["history"][-1]["val_loss"]) for k in both]
    check.figure(
        "sweep_difference",
        {
            "runs_compared": len(both),
            "identical_test_accuracy": sum(a == 0 for a in accuracy),
            "max_test_accuracy_points": round(max(accuracy), 4),
            "max_val_loss_difference": float(f"{max(loss):.3g}"),
        },
    )


def markdown(summary: dict[str, Any]) -> str:
    m, figures = summary["machine"], summary["figures"]
    lines = [
        f"# GPU check, {summary['date'][:10]}",
        "",
        f"{m['gpu']} (compute capability {m['capability']}, {m['gpu_memory_gib']} GiB, driver {m['driver'] or '?'}); "
        f"torch {m['torch']} (CUDA {m['cuda']}, cuDNN {m['cudnn']}), Python {m['python']}, {m['cpu_cores']} CPU "
        f"cores. Budget {summary['budget_s']} s, took {summary['took_s']} s.",
        "",
        "| step | outcome | seconds |",
        "|---|---|---:|",
    ]
    for name, step in summary["steps"].items():
        outcome = step.get("skipped") or ("ran out of time" if step.get("timed_out") else f"exit {step['returncode']}")
        lines.append(f"| {name} | {outcome} | {step.get('seconds', '-')} |")
    lines += ["", "| measurement | figure |", "|---|---|", *measurement_rows(figures)]
    if "bench" in figures:
        from cnnlab.bench.suite import table

        bench_file = Path(summary.get("bench_json", ""))
        lines += ["", f"## cnnlab-bench device=cuda {BENCH_ONLY}", ""]
        lines.append(table(json.loads(bench_file.read_text())) if bench_file.is_file() else "(bench.json missing)")
    return "\n".join(lines) + "\n"


def cell(text: str) -> str:
    """`text` fit for one Markdown table cell."""
    return " ".join(text.split()).replace("|", "/")


def sweep_row(sweep: dict[str, Any]) -> str:
    """One sweep's table row; a sweep cut short or smaller than the report's 30 runs also gets their time at its
    pace, so the two launchers compare on the same count."""
    per_run = f", {sweep['train_time_s_per_run']} s of training per run" if sweep["finished"] else ""
    cut = " (stopped at its time limit)" if sweep["timed_out"] else ""
    if sweep["estimated_s_for_30"]:
        cut += f"; {REPORT_RUNS} runs at that pace: ~{sweep['estimated_s_for_30']} s"
    seeds = sweep["expected"] // CONFIGURATIONS
    return (
        f"| report's {CONFIGURATIONS} configurations x {seeds} seed{'s' if seeds > 1 else ''}, {sweep['launcher']} "
        f"| {sweep['finished']} of {sweep['expected']} runs finished in {sweep['seconds']} s{cut}{per_run} |"
    )


def measurement_rows(figures: dict[str, Any]) -> list[str]:
    rows = []
    if tests := figures.get("tests"):
        failed = "; ".join(f"{f['test']}: {cell(f['message'][:200])}" for f in tests["failures"])
        rows.append(
            f"| CUDA tests (tests/test_cuda.py) | {tests['passed']} passed, {tests['failed']} failed, "
            f"{tests['skipped']} skipped{': ' + failed if failed else ''} |"
        )
    for label in FIVE_EPOCH_RUNS:
        if run := figures.get(f"e5_{label}"):
            rows.append(
                f"| 5-epoch run, {run['title']}, {run['device']} | {run['epochs']} epochs in "
                f"{run['train_time_s']:.1f} s (median {run['images_per_s']:,.0f} training images/s), test accuracy "
                f"{run['test_accuracy']:.2f} % (CPU, same seed: {run['cpu_test_accuracy']:.2f} %) |"
            )
    if (plain := figures.get("e5_adam")) and (evaluated := figures.get("e5_adam_eval")):
        extra = 100 * (evaluated["train_time_s"] / plain["train_time_s"] - 1)
        rows.append(f"| validating every half epoch, cost on the 5-epoch Adam run | {extra:+.1f} % training time |")
    for name in CAPTUM_COMMANDS:
        if captum := figures.get(name):
            row = f"| cnnlab-{name} at its defaults on the Adam run, cuda | computed in {captum['compute_s']} s"
            if name == "robustness":
                curves = "; ".join(
                    f"{a}: " + ", ".join(f"{v:.1f}" for v in acc) for a, acc in captum["accuracy"].items()
                )
                row += f" (accuracy % at epsilons {captum['epsilons']}: {curves})"
            rows.append(f"{row}; the whole command {captum['command_s']} s |")
    for name in ("sweep_parallel", "sweep"):
        if sweep := figures.get(name):
            rows.append(sweep_row(sweep))
    if diff := figures.get("sweep_difference"):
        rows.append(
            f"| side by side vs one at a time, the same run directories | {diff['runs_compared']} runs compared: "
            f"{diff['identical_test_accuracy']} with identical test accuracy, largest difference "
            f"{diff['max_test_accuracy_points']} points; largest final validation loss difference "
            f"{diff['max_val_loss_difference']} |"
        )
    if occlusion := figures.get("occlusion_cpu_vs_cuda"):
        dev, secs = occlusion["max_abs_difference"], occlusion["compute_s"]
        rows.append(
            f"| occlusion maps, CPU vs CUDA (10 images, 5x5, stride 1) | largest difference {dev['cuda_fp32']:.1e} "
            f"in fp32, {dev['cuda_default']:.1e} with torch's default TF32 convolutions; {secs['cpu']:.2f} s on the "
            f"CPU, {secs['cuda_default']:.2f} s on CUDA (defaults, after a first CUDA call) |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?")
    parser.add_argument("--deadline", type=float, help="when the check must be done, in Unix seconds")
    parser.add_argument("--occlusion", nargs=2, type=Path, metavar=("RUN_DIR", "RESULT_JSON"))
    args = parser.parse_args()
    if args.occlusion:
        occlusion_deviation(*args.occlusion)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    check = Check(args.out, args.deadline or time.time() + 520)
    check.summary["bench_json"] = str(args.out / "bench.json")
    run_tests(check)
    adam_dir = five_epoch_runs(check)
    captum_steps(check, adam_dir)
    parallel = run_sweep(check, "sweep_parallel", PARALLEL_SWEEP, 120)
    run_bench(check)
    occlusion_step(check, adam_dir)
    # one seed per configuration, one run at a time: the pace of the basic launcher, and six runs to compare
    compare_sweeps(check, parallel, run_sweep(check, "sweep", [], 24 * 3600, seeds=(0,)))
    shutil.rmtree(check.scratch, ignore_errors=True)
    print((args.out / "gpu_check.md").read_text(), flush=True)


if __name__ == "__main__":
    main()
