"""Malformed and hostile requests against the real server: each gets a 4xx whose
body says what is wrong, and the server still answers /health afterwards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serve_process import ServerProcess

JSON = {"content-type": "application/json"}
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
NOT_A_STRING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.lists(SCALARS, max_size=3),
    st.dictionaries(st.text(max_size=5), SCALARS, max_size=3),
)
PATHLIKE = st.sampled_from(
    ["../etc/passwd", "..", "%2e%2e%2fetc", "/etc/passwd", "C:\\Windows", "a/../../b", "~root"]
)
APP_NAMES = st.one_of(PATHLIKE, st.text(min_size=1, max_size=80)).filter(
    lambda name: name not in ("naive_rag", "search_augmented") and name.strip("./") != ""
)


def _bodies() -> st.SearchStrategy[Any]:
    question = st.text(min_size=1, max_size=30)
    return st.one_of(
        st.fixed_dictionaries({"question": NOT_A_STRING}),
        st.just({"question": ""}),
        st.just({"question": "x" * 9_000}),  # over the question limit
        st.fixed_dictionaries({"question": question, "config": SCALARS}),
        st.fixed_dictionaries(
            {"question": question, "config": st.fixed_dictionaries({"top_k": st.integers(-5, 0)})}
        ),
        st.fixed_dictionaries(
            {"question": question, "deadline_s": st.one_of(st.floats(max_value=0), st.just(1e9))}
        ),
        st.fixed_dictionaries(
            {"question": question, "documents": st.lists(NOT_A_STRING, min_size=1, max_size=3)}
        ),
        st.fixed_dictionaries({"question": question, "path": PATHLIKE}),  # unknown field
        st.lists(SCALARS, max_size=3),
        SCALARS,
    )


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def _assert_clear_4xx(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    error = response.json()["error"]
    assert error["type"] and error["message"]


HOSTILE = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@HOSTILE
@given(payload=_bodies())
def test_malformed_query_bodies_get_422_naming_the_field(http: httpx.Client, payload: Any) -> None:
    response = http.post("/v1/apps/naive_rag/query", content=json.dumps(payload), headers=JSON)
    _assert_clear_4xx(response)
    assert response.status_code == 422
    if isinstance(payload, dict) and "question" in payload:
        fields = [f["field"] for f in response.json()["error"].get("fields", [])]
        assert fields and all(f.startswith("body") for f in fields)


@HOSTILE
@given(name=APP_NAMES)
def test_unknown_and_path_like_app_names_are_refused(http: httpx.Client, name: str) -> None:
    url = f"/v1/apps/{quote(name, safe='')}/query"
    response = http.post(url, json={"question": "hi", "documents": [{"text": "a"}]})
    _assert_clear_4xx(response)
    chat = http.post(
        "/v1/chat/completions", json={"model": name, "messages": [{"role": "user", "content": "a"}]}
    )
    _assert_clear_4xx(chat)


@HOSTILE
@given(raw=st.binary(min_size=1, max_size=200))
def test_bad_bytes_and_bad_utf8_are_refused(http: httpx.Client, raw: bytes) -> None:
    for body in (raw, b'{"question": "' + raw + b'"}', b"\xff\xfe" + raw):
        try:
            json.loads(body)
            continue  # valid JSON by chance: another test's business
        except (ValueError, UnicodeDecodeError):
            pass
        response = http.post("/v1/apps/naive_rag/query", content=body, headers=JSON)
        _assert_clear_4xx(response)


def test_the_server_still_answers_after_all_that(http: httpx.Client) -> None:
    assert http.get("/health").status_code == 200
    answer = http.post(
        "/v1/apps/naive_rag/query", json={"question": "hi", "documents": [{"text": "a b c"}]}
    )
    assert answer.status_code == 200
