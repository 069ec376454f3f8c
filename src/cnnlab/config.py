"""Config helpers shared by every entry point: where the project lives, the resolvers its YAML uses, and composing a
config (with overrides spelled as its command line spells them) from inside or outside a running Hydra app."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from cnnlab.errors import ConfigError, first_line

PACKAGE_DIR = Path(__file__).resolve().parent
# the configs ship inside the package: in a checkout `src/cnnlab/conf` is a link to the top-level conf/ (their one
# source), in a wheel it is a copy, so every command finds them wherever it is run from
CONF_DIR = PACKAGE_DIR / "conf"
# where the data lives when `paths.data_dir` is not given: e.g. one shared copy of MNIST for several checkouts
DATA_DIR_ENV = "CNNLAB_DATA_DIR"


def project_root() -> Path:
    """The checkout's root (holding pyproject.toml and conf/) when cnnlab runs from one (editable install or
    PYTHONPATH=src), else the working directory: an installed wheel writes its outputs and data where it is run."""
    root = PACKAGE_DIR.parents[1]
    return root if (root / "pyproject.toml").is_file() and (root / "conf").is_dir() else Path.cwd()


def _published(key: str) -> DictConfig:
    from cnnlab.replay.published import published_values  # imported on use: most commands never resolve it

    return OmegaConf.create(published_values(key))


def register_resolvers() -> None:
    """`${cnnlab.root:}` lets `paths` default to the repository root without chdir or env vars;
    `${cnnlab.published:<run>}` gives the original report's values for one of its runs from their one source."""
    OmegaConf.register_new_resolver("cnnlab.root", lambda: str(project_root()), replace=True)
    OmegaConf.register_new_resolver("cnnlab.published", _published, replace=True)


def to_plain(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain Python data (safe for JSON and `torch.load(weights_only=True)`)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # type: ignore[return-value]


@contextmanager
def _search_path() -> Iterator[None]:
    """Inside a Hydra app its search path is already set up (and must be kept); elsewhere set one up on conf/."""
    if GlobalHydra.instance().is_initialized():
        yield
    else:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            yield


def compose_config(config_name: str, overrides: Sequence[str] = (), return_hydra_config: bool = False) -> DictConfig:
    """`conf/<config_name>.yaml` composed with `overrides` exactly as its command would compose it, from inside a
    running Hydra app (e.g. the report running analyses) or outside one (a test, a notebook).

    A config that does not compose is a ConfigError with the first line of Hydra's or OmegaConf's message.
    """
    with _search_path():
        try:
            return compose(config_name, overrides=list(overrides), return_hydra_config=return_hydra_config)
        except (HydraException, OmegaConfBaseException) as err:
            raise ConfigError(first_line(err)) from None


def config_group_options(group: str) -> list[str]:
    """The options of a config group (the files of `conf/<group>/`, or whatever Hydra's search path adds)."""
    with _search_path():
        return sorted(GlobalHydra.instance().config_loader().get_group_options(group))


# characters that never need quoting, also inside a list or dict (no separators, escapes or interpolations)
_BARE = re.compile(r"[\w./+@~-]+", re.ASCII)


def _bare(text: str) -> bool:
    """Whether Hydra reads `text` unquoted as this very string (not a number, bool, null, or a grammar symbol)."""
    if not _BARE.fullmatch(text):
        return False
    try:
        parsed = OverridesParser.create().parse_override(f"key={text}").value()
    except HydraException:
        return False
    return isinstance(parsed, str) and parsed == text


def _quoted(text: str) -> str:
    """`text` as a double-quoted override value: quotes and the backslashes before them (or before the closing quote)
    escaped, and `${` (with the backslashes before it) escaped so it stays text, not an interpolation."""
    text = re.sub(r'(\\*)"', lambda m: m.group(1) * 2 + '\\"', text)
    text = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, text)
    return '"' + re.sub(r"(\\*)\$\{", lambda m: m.group(1) * 2 + "\\${", text) + '"'


def override_value(value: Any) -> str:
    """A plain value as the right-hand side of a Hydra override (`key=<this>`) that Hydra reads back as `value`:
    strings bare when that is unambiguous (`conv1`), quoted otherwise (`"5"`, `"true"`, `"a,b"`)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value if _bare(value) else _quoted(value)
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{key}:{override_value(v)}" for key, v in value.items()) + "}"
    if isinstance(value, Sequence):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    raise ConfigError(f"{value!r} ({type(value).__name__}) cannot be given as a config value")


def with_config_dir(overrides: Sequence[str], config_dir: str | None) -> list[str]:
    """Hydra's `--config-dir <folder>` (a user's own configs, e.g. their `experiment/*.yaml`) as the
    `hydra.searchpath` override that the compose API understands, so a check composed before the command runs sees
    the same configs as the command. A folder that is not there is a ConfigError naming it and the search path."""
    if config_dir is None:
        return list(overrides)
    folder = Path(config_dir).expanduser().absolute()
    if not folder.is_dir():
        raise ConfigError(f"--config-dir {config_dir}: no such folder (configs are searched there, then in {CONF_DIR})")
    _check_yaml(folder)
    searchpath, rest = split_searchpath(overrides)
    return [*rest, f"hydra.searchpath={override_value([f'file://{folder}', *searchpath])}"]


def split_searchpath(overrides: Sequence[str]) -> tuple[list[str], list[str]]:
    """The folders of the `hydra.searchpath` overrides among `overrides`, and the other overrides."""
    searchpath, rest = [], []
    for text in overrides:
        if text.lstrip("+~").partition("=")[0] == "hydra.searchpath":
            searchpath += list(OverridesParser.create().parse_override(text).value() or [])
        else:
            rest.append(text)
    return searchpath, rest


def _check_yaml(folder: Path) -> None:
    """Every YAML file of a user's config folder parses: Hydra would report a broken one as a long traceback."""
    for path in sorted(folder.rglob("*.yaml")):
        try:
            yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(err, "problem", None) or first_line(err)
            raise ConfigError(f"{path}: not a readable YAML config ({problem}{where})") from None
