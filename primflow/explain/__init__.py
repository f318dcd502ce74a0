"""Explaining a query's latency: graphs, passes, the critical path, engine time and the
gap to the uncontended bound, as text (``format_explanation``) or as a standalone
page (``render_page``, needs the ``explain`` extra: plotly).

- ``model``: ``Explanation``, plain data with JSON in and out (``--save``/``--from-json``);
- ``build``: from a finished ``Answer`` (or a ``primflow run --json`` line);
- ``passes``: what each pass changed, replayed from the p-graph;
- ``recorder``: what a session keeps to explain its recent queries (``primflow serve``'s
  ``/trace/{query_id}`` and ``primflow explain``);
- ``text``, ``html``, ``layout``: the renderings.
"""

from primflow.explain.ask import explain_question
from primflow.explain.build import explain_answer, explain_run_json
from primflow.explain.model import ExplainFormatError, Explanation
from primflow.explain.recorder import ExplainRecorder
from primflow.explain.text import format_explanation

__all__ = [
    "ExplainFormatError",
    "ExplainRecorder",
    "Explanation",
    "explain_answer",
    "explain_question",
    "explain_run_json",
    "format_explanation",
]
