"""`cnnlab-bench`: time cnnlab against the report-style code and write `outputs/bench/bench.json`.
Thin wrapper around `cnnlab.bench.runner.run_bench`."""

from __future__ import annotations

import tempfile
from pathlib import Path

from omegaconf import DictConfig

from cnnlab.bench.runner import output_path, run_bench
from cnnlab.bench.suite import table
from cnnlab.cli.entry import command
from cnnlab.errors import run_cli


@command("cnnlab-bench", "bench")
def main(cfg: DictConfig) -> None:
    with tempfile.TemporaryDirectory(prefix="cnnlab-bench-") as scratch:
        results = run_cli("cnnlab-bench", lambda: run_bench(cfg, Path(scratch)))
    print(table(results))
    print(f"written to {output_path(cfg)}")


if __name__ == "__main__":
    main()
