"""Hyper-parameter tuning with Optuna: one study per training configuration, each trial an ordinary run directory
trained by the one training engine, the objective validation accuracy only (see docs/tuning.md)."""

from cnnlab.tuning.runner import TuneResult, seed_config, tune
from cnnlab.tuning.settings import TuneSettings, check_tune, tune_settings

__all__ = ["TuneResult", "TuneSettings", "check_tune", "seed_config", "tune", "tune_settings"]
