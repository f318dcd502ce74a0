"""Latency profiles of remote engines, with the one capability passes must know.

``RemoteProfile`` is a :class:`LatencyProfile` that also says whether the engine's
server can reuse a prompt prefix left by an earlier request (``can_reuse_prefix``,
from its dialect or the config). The split-prefill pass reads it: splitting a prompt
for a server that cannot reuse the prefix would prefill it twice.

Without a measured profile (`primflow profile --engines FILE`), a remote engine runs
on its kind's default and warns once: the defaults describe this machine's embedded
engines, not a server on an accelerator.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields

from primflow.engines.profile import LatencyProfile


@dataclass(frozen=True, slots=True)
class RemoteProfile(LatencyProfile):
    can_reuse_prefix: bool = True


def remote_profile(
    engine: str, kind: str, measured: LatencyProfile | None, can_reuse_prefix: bool
) -> RemoteProfile:
    """The engine's measured profile (or its kind's default, with a warning) plus the
    prefix capability."""
    if measured is None:
        warnings.warn(
            f"remote engine {engine!r} has no measured latency profile; using the "
            f"{kind} default (run `primflow profile --engines FILE` to measure it)",
            stacklevel=2,
        )
        measured = LatencyProfile.default_for(kind)
    values = {f.name: getattr(measured, f.name) for f in fields(LatencyProfile)}
    return RemoteProfile(**values, can_reuse_prefix=can_reuse_prefix)
