"""Optimization passes: p-graph -> e-graph. One pass per module, each a pure
``Graph -> Graph`` function; :mod:`primflow.passes.pipeline` runs them in order to a
fixpoint with lint, a cache and timing."""

from primflow.passes.decompose_stages import decompose_stages
from primflow.passes.pipeline import (
    GraphCache,
    GraphPass,
    Optimizer,
    OptimizeReport,
    PassError,
    default_passes,
    graph_shape_key,
    optimize,
)
from primflow.passes.pipeline_decode import pipeline_decode
from primflow.passes.prune_dependencies import prune_dependencies
from primflow.passes.split_prefill import split_prefill

__all__ = [
    "GraphCache",
    "GraphPass",
    "OptimizeReport",
    "Optimizer",
    "PassError",
    "decompose_stages",
    "default_passes",
    "graph_shape_key",
    "optimize",
    "pipeline_decode",
    "prune_dependencies",
    "split_prefill",
]
