"""Incremental decode parsers: items come out as soon as they are complete, whatever the
chunking of the stream, and the text output handles UTF-8 split across tokens."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from primflow.engines.llm.output import GenerationOutput, StopTextStream
from primflow.engines.llm.parsers import JsonParser, LinesParser, clean_line, make_parser


def feed_in_pieces(parser_kind: str, text: str, cuts: list[int], num_items: int | None = None):
    """Feed ``text`` cut at ``cuts``; return all items and the finish() items."""
    parser = make_parser(parser_kind, num_items)
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(text))), len(text)]
    items: list[str] = []
    for start, stop in itertools.pairwise(bounds):
        items += parser.feed(text[start:stop])
    return items, parser.finish(), parser


def emission_offsets(parser_kind: str, text: str) -> list[int]:
    """Feed one character at a time; the offset of the char that completed each item."""
    parser = make_parser(parser_kind)
    offsets: list[int] = []
    for i, char in enumerate(text):
        offsets += [i] * len(parser.feed(char))
    return offsets


def test_json_list_emits_each_item_at_its_closing_quote():
    text = '["first query", "second, with comma", "third \\"quoted\\""]'
    closing = [text.index('y"') + 1, text.index('a"') + 1, text.rindex('"]')]
    assert emission_offsets("json_list", text) == closing


def test_json_list_items_decode_escapes_and_unicode():
    text = json.dumps(["naïve café", "tab\there", "emoji 😀", "line\nbreak"])
    items, rest, parser = feed_in_pieces("json_list", text, [3, 9, 10, 25])
    assert items == ["naïve café", "tab\there", "emoji 😀", "line\nbreak"]
    assert rest == [] and parser.is_done


def test_json_list_skips_a_preamble_and_code_fence():
    text = 'Here are the queries:\n```json\n["a b", "c d"]\n```'
    items, _, _ = feed_in_pieces("json_list", text, [5, 30])
    assert items == ["a b", "c d"]


def test_json_list_non_string_values_are_raw_text():
    items, _, _ = feed_in_pieces("json_list", '[1, "x", {"k": [1, "]"]}, true]', [4, 12])
    assert items == ["1", "x", '{"k": [1, "]"]}', "true"]


def test_json_list_stops_at_num_items():
    items, _, parser = feed_in_pieces("json_list", '["a", "b", "c", "d"]', [], num_items=2)
    assert items == ["a", "b"] and parser.is_done


def test_json_list_falls_back_to_lines_when_the_model_writes_lines():
    items, rest, _ = feed_in_pieces("json_list", '1. "best pizza"\n2. pasta recipes\n3. wine', [4])
    assert items + rest == ["best pizza", "pasta recipes", "wine"]
    assert rest == ["wine"]  # the last line has no newline: complete only at the end


def test_json_list_cut_mid_item_drops_the_unfinished_item():
    items, rest, parser = feed_in_pieces("json_list", '["done", "unfini', [])
    assert items == ["done"] and rest == [] and not parser.is_done


def test_json_object_emits_values_in_key_order():
    text = '{"question": "what is x?", "answer": "x is y", "score": 0.5}'
    assert feed_in_pieces("json_object", text, [7, 20, 33])[0] == ["what is x?", "x is y", "0.5"]
    offsets = emission_offsets("json_object", text)
    assert offsets == [text.index('?"') + 1, text.index('y"') + 1, len(text) - 1]


def test_json_object_keys_are_never_items():
    items, _, _ = feed_in_pieces("json_object", '{"a": "1", "b": "2"}', [2, 3, 4])
    assert items == ["1", "2"]


def test_lines_strip_numbering_and_bullets():
    text = "1. alpha\n2) beta\n- gamma\n* delta\n\n  • epsilon\n(6) zeta"
    items, rest, _ = feed_in_pieces("lines", text, [3, 11])
    assert items + rest == ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]


def test_lines_emit_at_newline():
    assert emission_offsets("lines", "one\ntwo\n") == [3, 7]


def test_clean_line_drops_fences_and_intros():
    assert clean_line("```json") == "" and clean_line("Here are three queries:") == ""
    assert clean_line('  "quoted",') == "quoted"


def test_unknown_parser_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown decode parser 'yaml'"):
        make_parser("yaml")


def test_feeding_after_finish_raises():
    parser = LinesParser()
    parser.finish()
    with pytest.raises(RuntimeError):
        parser.feed("x")


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=5),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=12),
)
def test_json_list_chunking_never_changes_items(values, cuts):
    text = json.dumps(values, ensure_ascii=False)
    items, rest, parser = feed_in_pieces("json_list", text, cuts)
    assert items == values and rest == [] and parser.is_done


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=5),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=12),
)
def test_json_object_chunking_never_changes_items(values, cuts):
    text = json.dumps({f"k{i}": v for i, v in enumerate(values)}, ensure_ascii=False)
    assert feed_in_pieces("json_object", text, cuts)[0] == values


@settings(max_examples=100, deadline=None)
@given(
    lines=st.lists(st.from_regex(r"[a-zé😀 ]{0,8}[a-zé😀]", fullmatch=True), max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=80), max_size=10),
)
def test_lines_chunking_never_changes_items(lines, cuts):
    text = "\n".join(f"{i + 1}. {line}" for i, line in enumerate(lines))
    items, rest, _ = feed_in_pieces("lines", text, cuts)
    assert items + rest == [line.strip() for line in lines]


def test_json_parser_direct_construction_counts_items():
    parser = JsonParser(is_object=False, num_items=3)
    assert parser.feed('["a", "b"') == ["a", "b"] and not parser.is_done
    assert parser.feed(', "c"') == ["c"] and parser.is_done


# --- text stream: UTF-8 across tokens, stop strings -------------------------------


def pieces_of(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_utf8_characters_split_across_tokens_decode_whole(size):
    text = "crème brûlée 😀 日本"
    stream = StopTextStream()
    released = [stream.feed(p) for p in pieces_of(text.encode(), size)]
    assert "".join(released) + stream.finish() == text
    assert "\ufffd" not in "".join(released)


def test_stop_string_cuts_text_and_is_never_streamed():
    stream = StopTextStream(stop=["\n\n", "END"])
    released = [stream.feed(p) for p in [b"hello E", b"N", b"D more"]]
    assert "".join(released) == "hello " and stream.is_stopped
    assert stream.finish() == ""


def test_held_back_stop_prefix_is_released_when_it_is_not_a_stop():
    stream = StopTextStream(stop=["END"])
    assert stream.feed(b"the E") == "the "
    assert stream.feed(b"nd") == "End"
    assert stream.feed(b" EN") == " " and stream.finish() == "EN"


def test_generation_output_streams_items_while_text_grows():
    out = GenerationOutput(parser=make_parser("json_list", 2))
    deltas = [out.feed(p) for p in [b'["caf', b"\xc3", b'\xa9", "', b'tea"', b"]"]]
    assert [d.items for d in deltas] == [[], [], ["café"], ["tea"], []]
    assert out.text == '["café", "tea"]' and out.is_done
    assert out.finish().items == []
