"""Latency profiles of remote engines, with the one capability passes must know.

``RemoteProfile`` is a :class:`LatencyProfile` that also says whether the engine's
server can reuse a prompt prefix left by an earlier request (``can_reuse_prefix``,
from its dialect or the config). The split-prefill pass reads it: splitting a prompt
for a server that cannot reuse the prefix would prefill it twice.

A remote engine's measured profile comes from `primflow profile --engines FILE`, which
saves it beside the engine file (``<stem>.profiles.json``, where ``--engines FILE``
reads it back). Without one, the engine runs on its kind's default and warns once per
engine with :class:`RemoteProfileWarning`: the defaults describe this machine's
embedded engines, not a server on an accelerator.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields
from pathlib import Path

from primflow.engines.profile import LatencyProfile


class RemoteProfileWarning(UserWarning):
    """A remote engine runs without a measured latency profile."""


@dataclass(frozen=True, slots=True)
class RemoteProfile(LatencyProfile):
    can_reuse_prefix: bool = True


def profiles_path_for(engines_file: Path) -> Path:
    """Where `primflow profile --engines FILE` saves, and `--engines FILE` reads, the
    remote engines' measured profiles: ``<stem>.profiles.json`` beside the file."""
    return engines_file.with_name(f"{engines_file.stem}.profiles.json")


def remote_profile(
    engine: str,
    kind: str,
    measured: LatencyProfile | None,
    can_reuse_prefix: bool,
    engines_file: Path | None = None,
) -> RemoteProfile:
    """The engine's measured profile (or its kind's default, with a warning) plus the
    prefix capability."""
    if measured is None:
        if engines_file is None:
            how = "run `primflow profile --engines FILE` on its engine file"
        else:
            how = (
                f"{profiles_path_for(engines_file)} has none; run `primflow profile "
                f"--engines {engines_file}` to measure it"
            )
        warnings.warn(
            RemoteProfileWarning(
                f"remote engine {engine!r} has no measured latency profile, so the "
                f"{kind} default is used (it describes the embedded engine on this machine, "
                f"not the server): {how}"
            ),
            stacklevel=2,
        )
        measured = LatencyProfile.default_for(kind)
    values = {f.name: getattr(measured, f.name) for f in fields(LatencyProfile)}
    return RemoteProfile(**values, can_reuse_prefix=can_reuse_prefix)
