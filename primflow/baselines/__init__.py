"""Module-level baselines on the same engines as primflow, and the ablation settings.

- ``sequential``: the unoptimized p-graph one primitive at a time in template order,
  one engine call per primitive, no batching across queries (LlamaIndex-style chain).
- ``parallel``: independent modules run concurrently (asyncio.gather / LangGraph
  style); LLM calls reuse the engine's prefix cache of the shared instruction; no stage
  decomposition, prefill split, decode pipelining or topology batching.
- ablations: primflow with a subset of passes and a chosen batching policy.
"""

from collections.abc import Mapping, Sequence

from primflow.baselines.ablations import ABLATIONS, Ablation, passes_named
from primflow.baselines.executor import ModuleExecutor, module_dependencies, modules_in_order
from primflow.engines.base import Engine
from primflow.runtime.hooks import Hook

BASELINES = ("sequential", "parallel")


def baseline_executor(
    name: str, engines: Mapping[str, Engine], hooks: Sequence[Hook] = ()
) -> ModuleExecutor:
    """The executor of baseline ``name`` over ``engines``; the ``hooks`` that watch
    baselines (``Hook.sees_baselines``) see its runs."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r} (known: {', '.join(BASELINES)})")
    return ModuleExecutor(engines, is_parallel=name == "parallel", hooks=hooks)


__all__ = [
    "ABLATIONS",
    "BASELINES",
    "Ablation",
    "ModuleExecutor",
    "baseline_executor",
    "module_dependencies",
    "modules_in_order",
    "passes_named",
]
