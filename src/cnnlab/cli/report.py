"""`cnnlab-report`: the report from every run under paths.runs_dir. Thin wrapper around
`cnnlab.reporting.build_report`."""

from __future__ import annotations

import sys

from omegaconf import DictConfig

from cnnlab.cli.entry import command
from cnnlab.errors import run_cli
from cnnlab.reporting import build_report
from cnnlab.tracking.mlflow import tracked_report

# the report was written, but some of its sections failed (bad settings exit with 2 and write nothing)
EXIT_SECTION_FAILED = 1


@command("cnnlab-report", "report")
def main(cfg: DictConfig) -> None:
    # mlflow_tracking_uri set: the report is also logged as an MLflow run of its own (docs/tracking.md)
    result = run_cli("cnnlab-report", lambda: tracked_report(cfg.mlflow_tracking_uri, lambda: build_report(cfg)))
    print("\n".join(result.lines()))
    for section in result.failed:
        # the report is complete otherwise; a script still learns that part of it is missing
        print(f"cnnlab-report: error: {section.title}: {section.error}; see {result.markdown}", file=sys.stderr)
    if result.failed:
        raise SystemExit(EXIT_SECTION_FAILED)


if __name__ == "__main__":
    main()
