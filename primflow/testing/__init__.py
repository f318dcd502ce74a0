"""Shipped for users' tests: model-free fake engines (:mod:`.fakes`, one per engine
kind, with test knobs), a virtual-time event loop (:mod:`.clock`), and worked examples
of extending primflow (:mod:`.examples`, see docs/guide/extending.md).

Nothing here is imported by ``import primflow``."""
