"""The battery of bad inputs: every command, through its real entry point, answers each with one line that names the
setting and what is allowed, exit status 2, no traceback and nothing written. docs/reliability.md lists the same
cases; a case added here belongs there too."""

from __future__ import annotations

import pytest

from tests.helpers import invoke

# (command, arguments, words the one line must contain)
CASES = [
    # cnnlab-train: unknown names and keys, with the closest valid ones
    ("train", ["trainer.epoch=3"], "trainer.epoch is not a setting of cnnlab-train; did you mean trainer.epochs?"),
    ("train", ["optimizer=bogus"], "optimizer=bogus is not an option of cnnlab-train; choose one of: adam, momentum"),
    ("train", ["optimizer=adma"], "did you mean adam?"),
    ("train", ["data=mnsit"], "data=mnsit is not an option of cnnlab-train; did you mean mnist?"),
    ("train", ["logger=wandb"], "logger=wandb is not an option of cnnlab-train; choose one of: tensorboard"),
    ("train", ["launcher=slurm"], "launcher=slurm is not an option of cnnlab-train"),
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
    ("train", ["data.batch_size=0"], "data.batch_size=0 must be a positive integer"),
    ("train", ["data.eval_batch_size=-5"], "data.eval_batch_size=-5 must be a positive integer"),
    ("train", ["data.subset=0"], "data.subset=0 must be a positive integer"),
    ("train", ["data.val_size=0"], "data.val_size=0 must be between 1 and 59999"),
    ("train", ["data.val_size=60000"], "data.val_size=60000 must be between 1 and 59999"),
    # flags
    ("train", ["model.batch_norm=maybe"], "model.batch_norm='maybe' must be true or false"),
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
    ("report", ["seeds=[-1]"], "seeds=[-1] must be a non-empty list of integers >= 0"),
    ("report", ["seeds=[]"], "seeds=[] must be a non-empty list of integers >= 0"),
    ("report", ["confidence=2"], "confidence=2.0 must be between 0 and 1 (exclusive)"),
    ("report", ["target_accuracy=nan"], "target_accuracy=nan must be a positive number"),
    ("report", ["replay_epochs=0"], "replay_epochs=0 must be a positive integer"),
    ("report", ["analysis_device=tpu"], "analysis_device='tpu' is not allowed; choose one of: auto, cpu, cuda"),
    ("report", ["analyses_enabled=maybe"], "analyses_enabled='maybe' must be true or false"),
    ("report", ['train_overrides=["trainer.epochs=0"]'], "trainer.epochs=0 must be a positive integer"),
    ("report", ['train_overrides=["trainer.epoch=3"]'], "train_overrides=['trainer.epoch=3'] does not compose"),
    ("report", ["seed=[1]"], "seed is not a setting of cnnlab-report; did you mean seeds?"),
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


def test_the_battery_is_large_and_covers_every_command():
    commands = {command for command, _, _ in CASES}
    assert len(CASES) >= 60
    assert {"train", "replay", "summary", "data", "bench", "report"} <= commands
