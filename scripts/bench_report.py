"""Time `build_report` over the runs already under paths.runs_dir: the first build, then re-builds without new runs.

    PYTHONPATH=src python scripts/bench_report.py [report overrides...] [--repeat N]
    e.g. scripts/bench_report.py paths.output_dir=/tmp/smoke 'train_overrides=["debug=smoke"]'

Prints seconds per build (imports excluded); a re-build only re-reads metrics.json files and skips unchanged figures.
"""

from __future__ import annotations

import argparse
import time

from hydra import compose, initialize_config_dir

from cnnlab.config import CONF_DIR
from cnnlab.reporting import build_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="cnnlab-report overrides")
    parser.add_argument("--repeat", type=int, default=3, help="re-builds after the first (default 3)")
    args = parser.parse_args()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("report", overrides=args.overrides)
    for i in range(1 + args.repeat):
        start = time.perf_counter()
        result = build_report(cfg)
        print(
            f"{'first build' if i == 0 else f're-build {i}'}: {time.perf_counter() - start:.2f} s -> {result.markdown}"
        )


if __name__ == "__main__":
    main()
