"""The battery of bad inputs: every command, through its real entry point, answers each with one line that names the
setting and what is allowed, exit status 2, no traceback and nothing written. docs/reliability.md lists the same
cases; a case added here belongs there too."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cnnlab.training.runner import train
from tests.helpers import REPO, TINY, compose_config, invoke, run_command

# (command, arguments, words the one line must contain)
CASES = [
    # cnnlab-train: unknown names and keys, with the closest valid ones
    ("train", ["trainer.epoch=3"], "trainer.epoch is not a setting of cnnlab-train; did you mean trainer.epochs?"),
    ("train", ["optimizer=bogus"], "optimizer=bogus is not an option of cnnlab-train; choose one of: adam, momentum"),
    ("train", ["optimizer=adma"], "did you mean adam?"),
    ("train", ["data=mnsit"], "data=mnsit is not an option of cnnlab-train; did you mean mnist?"),
    ("train", ["logger=wandb"], "logger=wandb is not an option of cnnlab-train; choose one of: mlflow, tensorboard"),
    ("train", ["launcher=slurm"], "launcher=slurm is not an option of cnnlab-train"),
    ("train", ["experiment=mine"], "; choose one of: comparison, grid, lr_sweep, report (searched "),
    ("train", ["experiment=reprot"], "did you mean report?"),
    ("train", ["+foo=1"], "foo is not a setting of cnnlab-train"),
    ("train", ["+trainer.epoch=3"], "trainer.epoch is not a setting of cnnlab-train; did you mean trainer.epochs?"),
    ("train", ["sed=1"], "sed is not a setting of cnnlab-train; did you mean seed?"),
    # seeds
    ("train", ["seed=-1"], "seed=-1 must be an integer seed in [0, 2**32)"),
    ("train", ["seed=abc"], "seed='abc' must be an integer seed in [0, 2**32)"),
    ("train", ["seed=4294967296"], "seed=4294967296 must be an integer seed in [0, 2**32)"),
    ("train", ["seed=1.5"], "seed=1.5 must be an integer seed"),
    ("train", ["seed=true"], "seed=True must be an integer seed"),
    ("train", ["data.split_seed=-3"], "data.split_seed=-3 must be an integer seed"),
    # names that select code
    ("train", ["optimizer.name=bogus"], "optimizer.name='bogus' is not allowed; choose one of: sgd, momentum"),
    ("train", ["optimizer.name=sgd"], "optimizer.name='sgd' names torch.optim.SGD, but optimizer._target_="),
    ("train", ["model.name=resnet"], "model.name='resnet' is not allowed; choose one of: simple_cnn"),
    ("train", ["data.name=cifar"], "data.name='cifar' is unknown; allowed: mnist, fashion_mnist"),
    ("train", ["trainer.precision=fp16"], "trainer.precision='fp16' is not allowed; choose one of: fp32, bf16"),
    ("train", ["trainer.device=tpu"], "trainer.device='tpu' is not allowed; choose one of: auto, cpu, cuda"),
    ("train", ["logger=tensorboard", "logger.name=wandb"], "logger.name='wandb' is not allowed"),
    # MLflow stores: checked before any run directory exists (port 1: nothing listens there)
    (
        "train",
        ["logger=mlflow", "logger.mlflow.tracking_uri=http://127.0.0.1:1"],
        "logger.mlflow.tracking_uri=http://127.0.0.1:1: no MLflow server answered at http://127.0.0.1:1/health",
    ),
    (
        "train",
        ["logger=mlflow", "logger.mlflow.tracking_uri=mlflow.db"],
        "tracking_uri='mlflow.db' is not a tracking URI",
    ),
    # numbers: finite, in range, and values torch accepts
    ("train", ["optimizer.lr=nan"], "optimizer.lr=nan must be a positive number"),
    ("train", ["optimizer.lr=inf"], "optimizer.lr=inf must be a positive number"),
    ("train", ["optimizer.lr=0"], "optimizer.lr=0 must be a positive number"),
    ("train", ["optimizer.lr=-0.1"], "optimizer.lr=-0.1 must be a positive number"),
    ("train", ["optimizer=sgd", "optimizer.weight_decay=nan"], "optimizer.weight_decay=nan must be a finite number"),
    ("train", ["optimizer=momentum", "optimizer.momentum=-1"], "torch refuses these settings (Invalid momentum value"),
    ("train", ["+optimizer.betas=[0.9,1.5]"], "torch refuses these settings (Invalid beta parameter at index 1: 1.5)"),
    ("train", ["+optimizer.foo=1"], "torch refuses these settings (Adam.__init__() got an unexpected keyword"),
    ("train", ["trainer.epochs=0"], "trainer.epochs=0 must be a positive integer"),
    ("train", ["trainer.epochs=two"], "trainer.epochs='two' must be a positive integer"),
    ("train", ["trainer.num_threads=0"], "trainer.num_threads=0 must be a positive integer"),
    ("train", ["trainer.eval_every=0"], "trainer.eval_every=0 steps is outside one epoch; allowed: null, a number of"),
    ("train", ["trainer.eval_every=-0.5"], "trainer.eval_every=-0.5 is not a fraction of an epoch in (0, 1]"),
    (
        "train",
        ["trainer.eval_every=900"],
        "trainer.eval_every=900 steps is outside one epoch; allowed: null, a number of steps from 1 to 782",
    ),
    ("train", ["trainer.eval_every=half"], "trainer.eval_every='half' is not a number"),
    ("train", ["data.batch_size=0"], "data.batch_size=0 must be a positive integer"),
    ("train", ["data.eval_batch_size=-5"], "data.eval_batch_size=-5 must be a positive integer"),
    ("train", ["data.subset=0"], "data.subset=0 must be a positive integer"),
    ("train", ["data.subset=999999"], "data.subset=999999 must be between 1 and the training split's size (50000)"),
    ("train", ["data.test_subset=0"], "data.test_subset=0 must be a positive integer"),
    ("train", ["data.test_subset=10001"], "data.test_subset=10001 must be between 1 and the test set's size (10000)"),
    ("train", ["data.val_size=0"], "data.val_size=0 must be between 1 and 59999"),
    ("train", ["data.val_size=60000"], "data.val_size=60000 must be between 1 and 59999"),
    # flags
    ("train", ["model.batch_norm=maybe"], "model.batch_norm='maybe' must be true or false"),
    ("train", ["trainer.figures=sometimes"], "trainer.figures='sometimes' must be true or false"),
    ("train", ["trainer.channels_last=1"], "trainer.channels_last=1 must be true or false"),
    ("train", ["data.normalize=yes"], "data.normalize='yes' must be true or false"),
    ("train", ["overwrite=2"], "overwrite=2 must be true or false"),
    # sweeps: every value is checked before any job starts
    ("train", ["-m", "seed=1,2,x"], "seed='x' must be an integer seed"),
    ("train", ["-m", "optimizer=sgd,bogus"], "optimizer=bogus is not an option of cnnlab-train"),
    ("train", ["-m", "optimizer.lr=0.1,inf"], "optimizer.lr=inf must be a positive number"),
    ("train", ["-m", "trainer.epochs=1,0"], "trainer.epochs=0 must be a positive integer"),
    ("train", ["optimizer=[sgd"], "cannot read the override 'optimizer=[sgd': no viable alternative at input"),
    # cnnlab-replay
    ("replay", ["epochs=0"], "epochs=0 must be a positive integer"),
    ("replay", ["epoch=3"], "epoch is not a setting of cnnlab-replay; did you mean epochs?"),
    ("replay", ["runs=9"], "runs=9 must be between 1 and 6 (the notebook's runs)"),
    ("replay", ["device=tpu"], "device='tpu' is not allowed; choose one of: auto, cpu, cuda"),
    ("replay", ["progress=maybe"], "progress='maybe' must be true or false"),
    ("replay", ["optimizers.sgd.lr=-1"], "optimizers.sgd.lr=-1 must be a positive number"),
    ("replay", ["optimizers.adam.name=bogus"], "optimizers.adam.name='bogus' is not allowed"),
    ("replay", ["optimizers.sgd.momentum=nan"], "optimizers.sgd.momentum=nan must be a finite number"),
    # cnnlab-summary and cnnlab-data
    ("summary", ["model.batch_norm=maybe"], "model.batch_norm='maybe' must be true or false"),
    ("summary", ["model.name=resnet"], "model.name='resnet' is unknown; allowed: simple_cnn"),
    ("summary", ["data=cifar"], "data=cifar is not an option of cnnlab-summary; choose one of: fashion_mnist, mnist"),
    ("summary", ["batch_norm=true"], "batch_norm is not a setting of cnnlab-summary; did you mean model.batch_norm?"),
    ("data", ["data=cifar"], "data=cifar is not an option of cnnlab-data"),
    ("data", ["data.name=cifar"], "data.name='cifar' is unknown; allowed: mnist, fashion_mnist"),
    # cnnlab-bench
    ("bench", ["seed=-1"], "seed=-1 must be an integer seed in [0, 2**32)"),
    ("bench", ["quick=maybe"], "quick='maybe' must be true or false"),
    ("bench", ["repeats=0"], "repeats=0 must be a positive integer"),
    ("bench", ["threads=0"], "threads=0 must be a positive integer"),
    ("bench", ["only=[speed]"], "only='speed' is not a comparison; choose from: training, sweep, memory"),
    ("bench", ["optimizer.lr=nan"], "optimizer.lr=nan must be a positive number"),
    ("bench", ["repeat=3"], "repeat is not a setting of cnnlab-bench; did you mean repeats?"),
    # cnnlab-report
    ("report", ["seeds=[-1]"], "seeds=[-1] must be a non-empty list of integers >= 0, e.g. seeds=[0,1,2]"),
    ("report", ["seeds=[]"], "seeds=[] must be a non-empty list of integers >= 0"),
    ("report", ["confidence=2"], "confidence=2.0 must be between 0 and 1 (exclusive)"),
    ("report", ["target_accuracy=nan"], "target_accuracy=nan must be a positive number"),
    ("report", ["replay_epochs=0"], "replay_epochs=0 must be a positive integer"),
    (
        "report",
        ["checks=[cnnlab.training.report_section.check_runs]"],
        "checks[0]='cnnlab.training.report_section.check_runs' needs the composed runs",
    ),
    ("report", ["mlflow_tracking_uri=mlflow.db"], "mlflow_tracking_uri='mlflow.db' is not a tracking URI"),
    ("report", ["analysis_device=tpu"], "analysis_device='tpu' is not allowed; choose one of: auto, cpu, cuda"),
    ("report", ["analyses_enabled=maybe"], "analyses_enabled='maybe' must be true or false"),
    ("report", ['train_overrides=["trainer.epochs=0"]'], "trainer.epochs=0 must be a positive integer"),
    ("report", ['train_overrides=["trainer.epoch=3"]'], "train_overrides=['trainer.epoch=3'] does not compose"),
    ("report", ["seed=[1]"], "seed is not a setting of cnnlab-report; did you mean seeds?"),
]


# analyses, on a finished run ({run}) or on one that is not finished ({unfinished})
ANALYSIS_CASES = [
    ("filters", ["layer=conv9"], "layer='conv9' is not allowed; choose one of: conv1, conv2, both"),
    ("filters", ["in_channel=-1"], "in_channel=-1 must be an input channel index >= 0 or 'all'"),
    ("filters", ["layer=conv2", "in_channel=99"], "in_channel=99 is out of range: conv2 has 32 input channels"),
    ("filters", ["layers=conv1"], "layers is not a setting of cnnlab-filters; did you mean layer?"),
    ("activations", ["layer=fc"], "layer='fc' is not allowed; choose one of: conv1, conv2"),
    ("activations", ["image=-1"], "image=-1 must be a test-image index >= 0"),
    ("activations", ["image=100000"], "image=100000 is out of range: the test set has images 0..9999"),
    ("occlusion", ["fill=nan"], "fill=nan must be a finite number"),
    ("occlusion", ["fill=grey"], "fill='grey' must be a finite number"),
    ("occlusion", ["stride=0"], "stride=0 must be a positive integer"),
    ("occlusion", ["sizes=[]"], "sizes=[] must be a non-empty list of patch sizes"),
    ("occlusion", ["sizes=[40]"], "sizes contains 40, larger than the 28-pixel image"),
    ("occlusion", ["images=0"], "images=0 must be a positive integer"),
    ("occlusion", ["num_images=2"], "num_images is not a setting of cnnlab-occlusion; did you mean images?"),
    ("adversarial", ["mode=bogus"], "mode='bogus' is not allowed; choose one of: untargeted, targeted"),
    ("adversarial", ["adversarial_preset=bogus"], "adversarial_preset=bogus is not an option of cnnlab-adversarial"),
    ("adversarial", ["seed=-1"], "seed=-1 must be an integer seed in [0, 2**32)"),
    ("adversarial", ["adversarial_preset.step=0"], "adversarial_preset.step=0 must be a positive number"),
    ("adversarial", ["adversarial_preset.lo=nan"], "adversarial_preset.lo=nan must be a finite number"),
    ("adversarial", ["adversarial_preset.lo=1", "adversarial_preset.hi=0"], "adversarial_preset.lo=1 must be below"),
    ("adversarial", ["adversarial_preset.iterations=0"], "adversarial_preset.iterations=0 must be a positive integer"),
    ("filters", ["device=tpu"], "device='tpu' is not allowed; choose one of: auto, cpu, cuda"),
    ("filters", ["run={unfinished}"], "is not finished (status trained)"),
    ("occlusion", ["run=/nonexistent/run"], "run /nonexistent/run does not exist"),
    ("activations", ["checkpoint=/nonexistent.pt"], "checkpoint=/nonexistent.pt is not a file"),
    ("robustness", ["epsilons=[0,1.5]"], "epsilons contains 1.5; each must be a number in [0, 1] (pixel units)"),
    ("robustness", ["epsilons=[]"], "epsilons=[] must be a non-empty list of numbers in [0, 1]"),
    ("robustness", ["steps=-1"], "steps=-1 must be a positive integer"),
    ("robustness", ["step_size=-0.1"], "step_size=-0.1 must be a number in (0, 1]"),
    ("robustness", ["attacks=[pdg]"], "attacks contains 'pdg' (did you mean 'pgd'?); allowed: fgsm, pgd"),
    ("robustness", ["images=20000"], "images=20000 is out of range: the test set has 10000 images"),
    ("robustness", ["run={unfinished}"], "is not finished (status trained)"),
    ("attributions", ["methods=[saliancy]"], "methods contains 'saliancy' (did you mean 'saliency'?)"),
    ("attributions", ["noise=2"], "noise=2 must be a number in [0, 1] (pixel units)"),
]


def case_id(case: tuple[str, list[str], str]) -> str:
    return f"{case[0]}:{' '.join(case[1])}"


@pytest.mark.parametrize("command,args,needle", CASES, ids=[case_id(c) for c in CASES])
def test_a_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, command, args, needle):
    out = tmp_path / "outputs"
    status, stderr = invoke(command, *args, f"paths.output_dir={out}")
    assert status == 2, stderr
    assert stderr.startswith(f"cnnlab-{command}: error: ") and stderr.count("\n") == 1, stderr
    assert needle in stderr, stderr
    assert not out.exists(), sorted(str(p) for p in out.rglob("*"))


# The same edge as a user meets it: a console command in its own process, one case per kind of command (each process
# pays Python's and torch's start-up), for the process's exit status and the exact line it prints.
PROCESS_CASES = [
    ("train", ["trainer.epoch=3"], "trainer.epoch is not a setting of cnnlab-train; did you mean trainer.epochs?"),
    ("train", ["debug=smoke", "data.subset=999999"], "data.subset=999999"),
    ("replay", ["runs=9"], "runs=9 must be between 1 and 6 (the notebook's runs)"),
    ("summary", ["model.batch_norm=maybe"], "model.batch_norm='maybe' must be true or false"),
    (
        "bench",
        ["quick=true", "only=[training,speed]"],
        "only='speed' is not a comparison; choose from: training, sweep, memory, eval_every, occlusion, untargeted",
    ),
    pytest.param(
        "bench",
        ["quick=true", "device=cuda"],
        "device=cuda but no CUDA GPU is available; use device=auto or device=cpu",
        marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU makes device=cuda a valid setting"),
        id="bench:quick=true device=cuda",
    ),
    ("occlusion", ["run={nowhere}"], "run {nowhere} does not exist"),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "command,args,needle", PROCESS_CASES, ids=[getattr(c, "id", None) or case_id(c) for c in PROCESS_CASES]
)
def test_a_bad_input_to_a_console_command_is_one_line_exit_2_and_writes_nothing(tmp_path, command, args, needle):
    out, nowhere = tmp_path / "outputs", tmp_path / "nowhere"
    proc = run_command(command, *(a.format(nowhere=nowhere) for a in args), f"paths.output_dir={out}", timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith(f"cnnlab-{command}: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert needle.format(nowhere=nowhere) in proc.stderr, proc.stderr
    assert not out.exists(), sorted(str(p) for p in out.rglob("*"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A finished tiny run and a trained one whose test pass never ran (as a tuning trial leaves it)."""
    out = tmp_path_factory.mktemp("battery")
    finished = train(compose_config("train", *TINY, output_dir=out)).run_dir
    unfinished = train(compose_config("train", *TINY, "seed=1", output_dir=out), test=False).run_dir
    return {"run": finished, "unfinished": unfinished}


@pytest.mark.slow
@pytest.mark.parametrize("command,args,needle", ANALYSIS_CASES, ids=[case_id(c) for c in ANALYSIS_CASES])
def test_a_bad_analysis_input_is_one_line_exit_2_and_writes_nothing(runs, command, args, needle):
    args = [arg.format(**runs) for arg in args]
    if not any(arg.startswith(("run=", "checkpoint=")) for arg in args):
        args.append(f"run={runs['run']}")
    before = sorted(runs["run"].rglob("*"))
    status, stderr = invoke(command, *args)
    assert status == 2, stderr
    assert stderr.startswith(f"cnnlab-{command}: error: ") and stderr.count("\n") == 1, stderr
    assert needle.format(**runs) in stderr, stderr
    assert sorted(runs["run"].rglob("*")) == before


def documented(command: str, args: list[str]) -> str:
    """How docs/reliability.md writes a case's command line."""
    line = " ".join(args).replace("{run}", "<run dir>").replace("{unfinished}", "<unfinished run dir>")
    is_analysis = command in ("filters", "activations", "occlusion", "adversarial", "robustness", "attributions")
    if is_analysis and not any(arg.startswith(("run=", "checkpoint=")) for arg in args):
        line += " run=<run dir>"
    return f"`cnnlab-{command} {line}`"


def test_every_case_is_listed_in_the_docs():
    text = (REPO / "docs" / "reliability.md").read_text()
    missing = [documented(c, a) for c, a, _ in CASES + ANALYSIS_CASES if documented(c, a) not in text]
    assert not missing
