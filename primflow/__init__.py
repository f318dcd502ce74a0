"""primflow: serve LLM applications end to end as primitive-level dataflow graphs."""

__version__ = "0.1.0"
