"""cnnlab: a Hydra-configured runner for small CNN experiments on MNIST-shaped data."""

from cnnlab.config import register_resolvers

__version__ = "0.1.0"

register_resolvers()
