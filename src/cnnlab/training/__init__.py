"""Training: the per-epoch loop, the optimizer factory and the runner that owns a run directory."""
