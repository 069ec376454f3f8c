"""Replay the original notebook from its one random stream and compare with its published numbers."""

from cnnlab.replay.results import format_comparison, load_replay

__all__ = ["format_comparison", "load_replay"]
