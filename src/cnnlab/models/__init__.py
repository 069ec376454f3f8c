"""Models and the counts the report quotes for them."""

from cnnlab.models.counts import count_neurons, count_parameters, layer_table
from cnnlab.models.folding import analysis_copy, fold_batch_norm
from cnnlab.models.simple_cnn import MODELS, SimpleCNN, build_model

__all__ = [
    "MODELS",
    "SimpleCNN",
    "analysis_copy",
    "build_model",
    "count_neurons",
    "count_parameters",
    "fold_batch_norm",
    "layer_table",
]
