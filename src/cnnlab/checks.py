"""Small validators that turn a bad setting into a ConfigError naming it and what is allowed."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Sequence
from typing import Any

from cnnlab.errors import ConfigError


def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name}={value!r} must be a positive integer")
    return value


def count_of(name: str, value: Any, whole: str, size: int) -> int:
    """How many items of `whole` (e.g. "the test set", of `size` items) to keep: a positive integer, at most `size`."""
    count = positive_int(name, value)
    if count > size:
        raise ConfigError(f"{name}={count} must be between 1 and {whole}'s size ({size})")
    return count


def positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name}={value!r} must be a positive number")
    return float(value)


def percentage(name: str, value: Any) -> float:
    """A percentage in (0, 100], e.g. an accuracy target."""
    number = positive_float(name, value)
    if number > 100:
        raise ConfigError(f"{name}={number!r} must be a percentage in (0, 100]")
    return number


def non_negative_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name}={value!r} must be a number >= 0")
    return float(value)


SEED_LIMIT = 2**32  # numpy's seeds are 32-bit; every stream a run seeds accepts this range


def seed(name: str, value: Any) -> int:
    """A seed every random stream accepts: an integer in [0, 2**32)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < SEED_LIMIT:
        raise ConfigError(f"{name}={value!r} must be an integer seed in [0, 2**32)")
    return value


def finite_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{name}={value!r} must be a finite number")
    return float(value)


def finite_numbers(name: str, value: Any) -> Any:
    """Every number in a setting (and in its lists and mappings) is finite: nan or inf never reach the code."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{name}={value!r} must be a finite number")
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            finite_numbers(f"{name}[{i}]", item)
    if isinstance(value, dict):
        for key, item in value.items():
            finite_numbers(f"{name}.{key}", item)
    return value


def one_of(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not allowed; choose one of: {', '.join(map(str, allowed))}")
    return value


def names_from(name: str, value: Any, allowed: Sequence[str]) -> tuple[str, ...]:
    """A non-empty list of names from `allowed`, in order, without repeats; an unknown one is named with the closest."""
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise ConfigError(f"{name}={value!r} must be a non-empty list of {', '.join(allowed)}")
    for item in value:
        if item not in allowed:
            near = difflib.get_close_matches(str(item), allowed, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ConfigError(f"{name} contains {item!r}{hint}; allowed: {', '.join(allowed)}")
    return tuple(dict.fromkeys(value))


def pixel_value(name: str, value: Any) -> float:
    """A value in the pixel range of images in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(f"{name}={value!r} must be a number in [0, 1] (pixel units)")
    return float(value)


def boolean(name: str, value: Any) -> bool:
    """A real true/false (Hydra reads `maybe` or `1` as a string or int, which Python would treat as truthy)."""
    if not isinstance(value, bool):
        raise ConfigError(f"{name}={value!r} must be true or false")
    return value
