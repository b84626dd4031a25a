import pandas as pd
import pytest

from helpers.tables import (
    format_count_rate,
    format_p,
    format_pp,
    format_rate,
    format_rate_ci,
    to_markdown,
)


@pytest.mark.parametrize(
    ("value", "text"), [(0.1234, "12.3%"), (0.0, "0.0%"), (float("nan"), "–")]
)
def test_format_rate(value, text):
    assert format_rate(value) == text


def test_a_rate_carries_its_denominator():
    assert format_count_rate(3, 25) == "12% (3 of 25)"
    assert format_count_rate(0, 0) == "– (0 of 0)"


def test_differences_are_percentage_points_with_interval():
    assert format_pp(0.021, 0.004, 0.038) == "+2.1 pp [0.4, 3.8]"
    assert format_rate_ci(0.34, 0.281, 0.404) == "34.0% [28.1%, 40.4%]"


@pytest.mark.parametrize(
    ("p", "text"), [(0.0004, "<0.001"), (0.01234, "0.012"), (0.5, "0.5")]
)
def test_format_p(p, text):
    assert format_p(p) == text


def test_markdown_tables_keep_text_as_written():
    frame = pd.DataFrame({"order_id": ["#1001", "00123"], "n": [1, 2]})
    lines = to_markdown(frame).splitlines()
    assert lines[0].split("|")[1].strip() == "order_id"
    assert "00123" in lines[3]
