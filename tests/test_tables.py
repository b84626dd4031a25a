import pandas as pd
import pytest

from helpers.tables import (
    format_count_rate,
    format_decimal,
    format_for_readers,
    format_header,
    format_interval,
    format_p,
    format_pp,
    format_rate,
    format_rate_ci,
    format_segment,
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
    assert format_pp(0.043, -0.114, 0.197, digits=0) == "+4 pp [-11, 20]"
    assert format_rate_ci(0.34, 0.281, 0.404) == "34.0% [28.1%, 40.4%]"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (-0.0004, "0.00"),
        (-0.0, "0.00"),
        (-0.006, "-0.01"),
        (0.8, "0.80"),
        (1234.5, "1,234.50"),
    ],
)
def test_a_number_that_rounds_to_zero_has_no_minus_sign(value, text):
    assert format_decimal(value) == text


def test_intervals_and_differences_never_show_negative_zero():
    # A bootstrap bound of -0.0004 is zero at the digits shown: "-0.00" would
    # read as a direction the interval does not have.
    assert format_interval(-0.0004, 1.0, digits=2, percent=False) == "[0.00, 1.00]"
    assert format_interval(-0.00004, 0.5) == "[0.0%, 50.0%]"
    assert format_rate(-0.00004) == "0.0%"
    assert format_pp(-0.0002, -0.0004, 0.01) == "+0.0 pp [0.0, 1.0]"
    assert format_pp(-0.021, -0.038, -0.004) == "-2.1 pp [-3.8, -0.4]"
    assert format_decimal(0.0, sign="+") == "+0.00"
    with pytest.raises(ValueError, match="sign must be"):
        format_decimal(1.0, sign="-")


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


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("n_called_before", "Called before"),
        ("is_callable", "Callable"),
        ("ci_low", "CI low"),
        ("aov", "AOV"),
        ("phone_status", "Phone status"),
        ("n", "N"),
        ("Times said", "Times said"),
        ("Relative lift [95% CI]", "Relative lift [95% CI]"),
        ("p", "p"),
        ("p (adjusted)", "p (adjusted)"),
    ],
)
def test_format_header_turns_column_names_into_words(name, header):
    assert format_header(name) == header


def test_tables_for_readers_say_yes_and_no_and_leave_the_frame_alone():
    frame = pd.DataFrame({"is_callable": [True, False], "code": ["OBJ_A", "c"]})
    readable = format_for_readers(frame)
    assert list(readable.columns) == ["Callable", "Code"]
    assert list(readable["Callable"]) == ["yes", "no"]
    assert list(readable["Code"]) == ["OBJ_A", "c"]
    assert list(frame.columns) == ["is_callable", "code"]


@pytest.mark.parametrize(
    ("segment", "label"),
    [
        ("first_time_no_return", "First-time, no return"),
        ("lifecycle_30-89d", "Lifecycle 30-89 days"),
        ("lifecycle_365d+", "Lifecycle 365+ days"),
        ("vip_buyers", "Vip buyers"),
    ],
)
def test_segments_read_as_labels(segment, label):
    assert format_segment(segment) == label


def test_tables_for_readers_label_a_segment_column():
    frame = pd.DataFrame({"segment": ["cart_abandoners"], "n_customers": [3]})
    readable = format_for_readers(frame)
    assert readable.to_dict("list") == {
        "Segment": ["Cart abandoners"],
        "Customers": [3],
    }
