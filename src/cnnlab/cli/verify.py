"""`cnnlab-verify <run dir>`: re-train a finished run from what its directory records and compare the results.

Exit status 0: identical (weights bit for bit, every metric); 1: they differ (each difference listed, with how the
device or versions differ and the largest metric difference); 2: bad input (not a finished run, data that no longer
matches its checksums, a run written by another cnnlab version). A plain argument parser, not Hydra: the command takes
one path and composes no config (the run directory holds the resolved one).
"""

from __future__ import annotations

import argparse
import os
import sys

from cnnlab.config import DATA_DIR_ENV
from cnnlab.errors import run_cli
from cnnlab.runs.verify import Verdict, Verification, verify_run

PROG = "cnnlab-verify"
MOST = 20  # differences listed; the rest are counted


def report(outcome: Verification) -> str:
    """The verdict as the command prints it."""
    lines = [str(outcome.verdict)]
    if outcome.environment:
        lines.append("environment differs from the recorded run: " + "; ".join(outcome.environment))
    if outcome.largest_metric_difference is not None:
        name, gap = outcome.largest_metric_difference
        lines.append(f"largest metric difference: {name} {gap:.6g}")
    lines += [f"  {line}" for line in outcome.differences[:MOST]]
    if len(outcome.differences) > MOST:
        lines.append(f"  ... and {len(outcome.differences) - MOST} more differences")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a finished run's directory (holding metrics.json and checkpoint.pt)")
    parser.add_argument(
        "--data-dir",
        default=os.environ.get(DATA_DIR_ENV),
        help=f"data folder to use instead of the recorded one (default: ${DATA_DIR_ENV} when set)",
    )
    parser.add_argument("--work-dir", default=None, help="where the temporary re-run goes (default: the system's)")
    args = parser.parse_args()
    outcome = run_cli(PROG, lambda: verify_run(args.run_dir, data_root=args.data_dir, work_dir=args.work_dir))
    print(report(outcome))
    sys.exit(0 if outcome.verdict is Verdict.IDENTICAL else 1)


if __name__ == "__main__":
    main()
