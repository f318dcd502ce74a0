"""Worked examples of extending primflow, shown in docs/guide/extending.md and run by its
tests: a user's own embedder engine (:mod:`.hashing_embedder`) and a user's own
component with an app built on it (:mod:`.hyde`)."""
