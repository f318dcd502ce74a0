"""Every public name (``primflow.__all__``) has a docstring with an ``Examples`` section
whose examples run, model-free, as doctests."""

from __future__ import annotations

import doctest
import inspect

import pytest

import primflow

# Names that are data, not code: nothing to attach a docstring to.
DATA_NAMES = {"__version__"}
CODE_NAMES = sorted(set(primflow.__all__) - DATA_NAMES)


def _tests(name: str) -> list[doctest.DocTest]:
    obj = getattr(primflow, name)
    finder = doctest.DocTestFinder(recurse=False)
    # No names given: each example imports what it uses, so it can be copied as is.
    return [t for t in finder.find(obj, name, globs={}) if t.examples]


@pytest.mark.parametrize("name", CODE_NAMES)
def test_public_name_has_a_running_example(name: str) -> None:
    obj = getattr(primflow, name)
    doc = inspect.getdoc(obj) or ""
    assert "Examples:" in doc, f"primflow.{name} has no 'Examples:' section"
    tests = _tests(name)
    assert tests, f"primflow.{name} has an Examples section without a doctest"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"primflow.{name}: {result.failed} example(s) failed"


def test_only_data_names_are_exempt() -> None:
    assert all(not callable(getattr(primflow, n)) for n in DATA_NAMES)
