"""`cnnlab-replay`: replay the notebook's six runs and print published vs replayed. Thin wrapper around
`cnnlab.replay.runner.replay`."""

from __future__ import annotations

from omegaconf import DictConfig

from cnnlab.cli.entry import command
from cnnlab.errors import run_cli
from cnnlab.replay.results import format_comparison, summary_path
from cnnlab.replay.runner import check_replay_settings, replay


@command("cnnlab-replay", "replay", check=check_replay_settings)
def main(cfg: DictConfig) -> None:
    summary = run_cli("cnnlab-replay", lambda: replay(cfg))
    print(format_comparison(summary), flush=True)
    print(f"results: {summary_path(cfg.paths.replay_dir, cfg.epochs)}", flush=True)


if __name__ == "__main__":
    main()
