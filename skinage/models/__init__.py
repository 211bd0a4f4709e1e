"""Backbones (registry), heads, the model, checkpoints, weights; ``skinage.models()`` lists the backbones."""

from ..commands import callable_module

callable_module(__name__, "models")
