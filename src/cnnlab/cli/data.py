"""`cnnlab-data`: fetch and verify a dataset's files under `data.root` (what the set-up script calls)."""

from __future__ import annotations

from omegaconf import DictConfig

from cnnlab.cli.entry import command
from cnnlab.data import ensure_files, get_spec
from cnnlab.errors import run_cli


@command("cnnlab-data", "fetch")
def main(cfg: DictConfig) -> None:
    spec = run_cli("cnnlab-data", lambda: get_spec(cfg.data.name))
    raw = run_cli("cnnlab-data", lambda: ensure_files(spec, cfg.data.root, download=cfg.data.download))
    print(f"{spec.name}: 4 files verified in {raw}")


if __name__ == "__main__":
    main()
