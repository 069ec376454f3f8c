"""Captum's attacks and gradient attributions warn, on every call, that they turned on the gradient of an input that
did not ask for it. They must (the gradient with respect to the input is what they compute), so the warning says
nothing to a user and would repeat through a report's output."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def input_gradient_warnings_off() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Input Tensor .* did not already require gradients")
        yield
