"""How every command starts: its overrides are composed and checked before Hydra creates any folder.

Hydra reports an unknown key or group option in a message of 6-11 lines with exit status 1, and creates the command's
log folder before any of our checks run. `command()` wraps `hydra.main`: it first composes the primary config with
the command line's overrides through Hydra's compose API (every value of a sweep, too) and runs the command's own
settings check, so a mistake is one line naming the setting, with the closest valid names, and exit status 2, and
nothing is written. Then Hydra runs the command as usual. `HYDRA_FULL_ERROR=1` shows the traceback behind the line.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from cnnlab.config import CONF_DIR, split_searchpath, with_config_dir
from cnnlab.errors import ConfigError, first_line, run_cli

Check = Callable[[DictConfig], None]
# flags with which Hydra prints something instead of running the command: left to Hydra as they are
INFO_FLAGS = ("help", "hydra_help", "cfg", "info", "shell_completion", "experimental_rerun")
# Hydra's command-line flags (those of `hydra.main`): with a value, and without one
VALUE_FLAGS = (
    ("--package", "-p"),
    ("--config-path", "-cp"),
    ("--config-name", "-cn"),
    ("--config-dir", "-cd"),
    ("--experimental-rerun",),
)
SWITCHES = (
    ("--help", "-h"),
    ("--hydra-help",),
    ("--version",),
    ("--resolve",),
    ("--run", "-r"),
    ("--multirun", "-m"),
    ("--shell-completion", "-sc"),
)


class HydraArgs(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would print our usage and exit: Hydra reports it, with its usage
        raise argparse.ArgumentError(None, message)


def hydra_args_parser() -> argparse.ArgumentParser:
    """A parser for the command line `hydra.main` reads, which Hydra does not make public: every flag of Hydra's
    (so a flag's value, or an abbreviated flag, is never taken for an override) and the overrides."""
    parser = HydraArgs(add_help=False)
    for names in VALUE_FLAGS:
        parser.add_argument(*names)
    for names in SWITCHES:
        parser.add_argument(*names, action="store_true")
    parser.add_argument("--cfg", "-c", choices=("job", "hydra", "all"))
    info = ("all", "config", "defaults", "defaults-tree", "plugins", "searchpath")
    parser.add_argument("--info", "-i", nargs="?", const="all", choices=info)
    parser.add_argument("overrides", nargs="*")
    return parser


def command(prog: str, config_name: str, check: Check | None = None) -> Callable[[Callable[[DictConfig], Any]], Any]:
    """`@hydra.main` for `conf/<config_name>.yaml`, with the command line checked first (see the module docstring)."""

    def decorate(task: Callable[[DictConfig], Any]) -> Callable[[], Any]:
        hydra_main = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)(task)

        @functools.wraps(task)
        def main() -> Any:
            try:
                args, unknown = hydra_args_parser().parse_known_args()
            except argparse.ArgumentError:
                return hydra_main()  # which reports the mistake
            if unknown or args.version:  # a flag Hydra does not know, or --version: Hydra answers before running
                return hydra_main()
            overrides = run_cli(prog, lambda: with_config_dir(args.overrides, args.config_dir))  # --help too
            if not any(getattr(args, flag, None) for flag in INFO_FLAGS):
                run_cli(prog, lambda: check_command_line(prog, config_name, overrides, check))
            return hydra_main()

        return main

    return decorate


def check_command_line(prog: str, config_name: str, overrides: Sequence[str], check: Check | None = None) -> None:
    """Compose `config_name` with `overrides` (each value of a sweep in turn) and run `check` on every result."""
    parsed = _parse(overrides)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        _reject_added_keys(prog, config_name, parsed)
        try:
            for cfg in _sweep_variants(prog, config_name, parsed):
                if check is not None:
                    HydraConfig.instance().set_config(cfg)  # `${hydra:...}` settings resolve as they will in the job
                    check(cfg)
        finally:
            HydraConfig.instance().cfg = None  # Hydra sets its own when the command runs


def _parse(overrides: Sequence[str]) -> list[Override]:
    parser = OverridesParser.create()
    parsed = []
    for text in overrides:  # one at a time, so the message names the override at fault
        try:
            parsed += parser.parse_overrides([text])
        except HydraException as err:
            raise ConfigError(f"cannot read the override {text!r}: {_first_line(err)}") from None
    return parsed


def _sweep_variants(prog: str, config_name: str, parsed: list[Override]) -> Iterator[DictConfig]:
    """The config with every sweep at its first value, then with each other value of each sweep in turn.

    A config group's other values are composed again; a plain setting's are set on a copy (cheap for long sweeps)."""
    first = [
        _single(o, next(iter(o.sweep_string_iterator()))) if o.is_sweep_override() else o.input_line for o in parsed
    ]
    base = _compose(prog, config_name, first)
    yield base
    for i, override in enumerate(parsed):
        if not override.is_sweep_override():
            continue
        is_group = (CONF_DIR / override.key_or_group).is_dir()
        for text, value in list(zip(override.sweep_string_iterator(), override.sweep_iterator()))[1:]:
            if is_group:
                yield _compose(prog, config_name, [*first[:i], _single(override, text), *first[i + 1 :]])
            else:
                variant = base.copy()
                with open_dict(variant):
                    OmegaConf.update(variant, override.key_or_group, value, merge=False)
                yield variant


def _single(override: Override, value: str) -> str:
    return f"{override.get_key_element()}={value}"


def _compose(prog: str, config_name: str, overrides: list[str]) -> DictConfig:
    try:
        return compose(config_name, overrides=overrides, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(_explain(prog, config_name, str(err), overrides)) from None


def _reject_added_keys(prog: str, config_name: str, parsed: list[Override]) -> None:
    """`+key=value` adds a setting no code reads: refused, with the closest existing names. Still allowed: Hydra's
    own `hydra.*` settings, config groups (`+experiment/report=sgd_bn`) and arguments of an instantiated object
    (`+optimizer.betas=[0.9,0.99]`), which its class then checks. The config without overrides, which this compares
    with, is composed only for a command line that adds a key."""
    added = [
        o.key_or_group
        for o in parsed
        if o.type in (OverrideType.ADD, OverrideType.FORCE_ADD)
        and not o.key_or_group.startswith("hydra.")
        and not (CONF_DIR / o.key_or_group).is_dir()
    ]
    defaults = _compose(prog, config_name, []) if added else None
    for key in added:
        parent = OmegaConf.select(defaults, key.rpartition(".")[0], default=None) if "." in key else None
        if OmegaConf.select(defaults, key, default=None) is not None:
            continue
        if isinstance(parent, DictConfig) and "_target_" in parent:
            continue
        raise ConfigError(f"{key} is not a setting of {prog}{_did_you_mean(key, _setting_names(defaults))}")


def _explain(prog: str, config_name: str, message: str, overrides: Sequence[str] = ()) -> str:
    """Hydra's message about an unknown option or key as one line with the closest valid names."""
    if found := re.search(r"Could not find '([^']+)/([^'/]+)'", message):
        group, choice = found.groups()
        options = re.findall(r"^\t(\S+)$", message, flags=re.M)
        allowed = f"; choose one of: {', '.join(options)}" if options else ""
        where = f" (searched {', '.join(_searched(group, overrides))})"
        return f"{group}={choice} is not an option of {prog}{_did_you_mean(choice, options)}{allowed}{where}"
    if found := re.search(r"Could not override '([^']+)'", message) or re.search(r"full_key: (\S+)", message):
        key = found.group(1)
        names = _setting_names(compose(config_name, overrides=[]))
        return f"{key} is not a setting of {prog}{_did_you_mean(key, names)}"
    return _first_line(message)


def _searched(group: str, overrides: Sequence[str]) -> list[str]:
    """The folders a config group's options were looked for in: the user's (`--config-dir`, `hydra.searchpath`)
    first, then cnnlab's own."""
    extra, _ = split_searchpath(overrides)
    return [f"{str(path).removeprefix('file://')}/{group}" for path in extra] + [str(CONF_DIR / group)]


def _setting_names(cfg: DictConfig) -> list[str]:
    """Every dotted setting name of a composed config (Hydra's own `hydra.*` left out)."""
    plain = OmegaConf.to_container(cfg, resolve=False)
    plain.pop("hydra", None)
    return list(_dotted_names(plain))


def _dotted_names(node: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in node.items():
        yield prefix + str(key)
        if isinstance(value, dict):
            yield from _dotted_names(value, f"{prefix}{key}.")


def _did_you_mean(word: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=2, cutoff=0.8)
    if not close:  # a misspelt last part: num_images -> images
        tail = word.rsplit(".", 1)[-1]
        close = [c for c in candidates if difflib.get_close_matches(tail, [c.rsplit(".", 1)[-1]], cutoff=0.7)][:2]
    return f"; did you mean {' or '.join(close)}?" if close else ""


def _first_line(err: Exception | str) -> str:
    return first_line(err, default="invalid command line")
