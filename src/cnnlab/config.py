"""Config helpers shared by every entry point: where the project lives and the resolvers its YAML uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

PACKAGE_DIR = Path(__file__).resolve().parent


def project_root() -> Path:
    """The repository root (the folder holding `conf/`), or the working directory for a non-editable install."""
    root = PACKAGE_DIR.parents[1]
    return root if (root / "conf").is_dir() else Path.cwd()


CONF_DIR = project_root() / "conf"


def _published(key: str) -> DictConfig:
    from cnnlab.replay.published import published_values  # imported on use: most commands never resolve it

    return OmegaConf.create(published_values(key))


def register_resolvers() -> None:
    """`${cnnlab.root:}` lets `paths` default to the repository root without chdir or env vars;
    `${cnnlab.published:<run>}` gives the original report's values for one of its runs from their one source."""
    if not OmegaConf.has_resolver("cnnlab.root"):
        OmegaConf.register_new_resolver("cnnlab.root", lambda: str(project_root()))
    if not OmegaConf.has_resolver("cnnlab.published"):
        OmegaConf.register_new_resolver("cnnlab.published", _published)


def to_plain(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain Python data (safe for JSON and `torch.load(weights_only=True)`)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # type: ignore[return-value]
