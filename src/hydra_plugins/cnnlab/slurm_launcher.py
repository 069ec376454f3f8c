"""launcher=submitit_slurm: hydra-submitit-launcher's SLURM launcher with logs a person can read.

- submitit prints each of its records through two handlers of its own (stdout, and stderr again for warnings) and a
  third time through Hydra's. Here its records go through the process's handlers only (Hydra's, in the sweep and in
  each job, so they also land in the job's log file), each message once: the status poll's repeated warnings, such as
  `sacct` failing on a cluster without accounting storage, are shown the first time.
- Each job's SLURM id and log files are printed as soon as the array is submitted, not only when a job fails.
- A job that stops on a user error (`cnnlab-train: error: ...`, exit status 2) ends as a failed job with a result, as
  any other failure does (otherwise submitit would wait for a result that never comes wherever `sacct` cannot tell it
  that the job has ended), and the sweep then stops with that error's one line, as it does under the other launchers.

Requeueing is submitit's: SLURM signals the job (USR2, `signal_delay_s` before its time limit, or when it is
preempted), the inherited `checkpoint()` resubmits the same call, and the run resumes from its `last.pt`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides
from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import OmegaConf

from cnnlab.errors import EXIT_USER_ERROR, fail

log = logging.getLogger(__name__)

# settings the executor takes when it is created rather than as job parameters
EXECUTOR_KEYS = ("submitit_folder", "max_num_timeout")
# the status poll numbers its messages ("Call #3 - Bypassing sacct error ..."); the number does not make them new
POLL_NUMBER = re.compile(r"^Call #\d+ - ")
# the one line a command prints before it exits on a user error (cnnlab.errors.fail)
USER_ERROR = re.compile(r"^cnnlab-[\w-]+: error: (.*)$", re.MULTILINE)


class JobStopped(RuntimeError):
    """The job exited on a user error; the error's one line is in the job's log."""


class SlurmLauncher(submitit_launcher.SlurmLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """Submit the sweep as one job array, say where each job logs, and wait for the results.

        The same steps as the parent's `launch`, which submits and waits in one go and so never shows the job ids.
        """
        import submitit  # as in the parent: plugin discovery imports this module and must stay fast

        assert self.config is not None
        route_submitit_logs()
        params = dict(self.params)
        executor = submitit.AutoExecutor(
            cluster="slurm", folder=params["submitit_folder"], slurm_max_num_timeout=params["max_num_timeout"]
        )
        executor.update_parameters(**job_parameters(params))
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        log.info("Submitit 'slurm' sweep output dir : %s", sweep_dir)

        numbers = range(initial_job_idx, initial_job_idx + len(job_overrides))
        state = Singleton.get_state()
        calls = [(list(o), "hydra.sweep.dir", n, f"job_id_for_{n}", state) for n, o in zip(numbers, job_overrides)]
        jobs = executor.map_array(self, *zip(*calls))
        names = [f"#{n} ({' '.join(filter_overrides(o))})" for n, o in zip(numbers, job_overrides)]
        for name, job in zip(names, jobs):
            logs = str(job.paths.stdout).removesuffix(".out") + ".{out,err}"
            log.info("\t%s -> SLURM job %s, log %s", name, job.job_id, logs)
        return [self._result(name, job) for name, job in zip(names, jobs)]

    def _result(self, name: str, job: Any) -> JobReturn:
        """The job's result once it ends; a job that stopped on a user error stops the sweep with that error's line."""
        from submitit.core.utils import FailedJobError

        try:
            return job.results()[0]
        except FailedJobError:
            errors = USER_ERROR.findall(job.stderr() or "")
            if not errors:
                raise  # anything else keeps its traceback
            assert self.config is not None
            fail(f"cnnlab-{self.config.hydra.job.name}", f"job {name}: {errors[-1]}")

    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        """Run one job of the sweep on its node."""
        route_submitit_logs()
        try:
            return super().__call__(*args, **kwargs)
        except SystemExit as stop:
            if stop.code != EXIT_USER_ERROR:
                raise  # among others submitit's own exit once it has requeued the job
            raise JobStopped(f"the job stopped with exit status {stop.code}; its error is the line above") from None


def job_parameters(params: dict[str, Any]) -> dict[str, Any]:
    """The launcher's settings as submitit's job parameters: the shared ones by name, the others as `slurm_<name>`."""
    shared = set(OmegaConf.structured(BaseQueueConf).keys())
    return {k if k in shared else f"slurm_{k}": v for k, v in params.items() if k not in EXECUTOR_KEYS}


class OncePerMessage(logging.Filter):
    """Passes each submitit message the first time, named as submitit's."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = POLL_NUMBER.sub("", record.getMessage())
        if text in self.seen:
            return False
        self.seen.add(text)
        level = f" {record.levelname.lower()}" if record.levelno >= logging.WARNING else ""
        record.msg, record.args = f"submitit{level}: {text}", ()
        return True


def route_submitit_logs() -> None:
    """Send submitit's records through the process's own handlers, each message once."""
    from submitit.core import logger  # its first import gives submitit's logger its two handlers

    submitit_log = logger.get_logger()
    for handler in list(submitit_log.handlers):
        submitit_log.removeHandler(handler)
    submitit_log.propagate = True
    if not any(isinstance(f, OncePerMessage) for f in submitit_log.filters):
        submitit_log.addFilter(OncePerMessage())
