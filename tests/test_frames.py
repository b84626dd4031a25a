import numpy as np
import polars as pl

from helpers.frames import number_rows_by_group


def test_rows_get_the_number_of_the_group_that_gathered_them():
    frame = pl.DataFrame({"email": ["b", "a", None, "b", None, "c", "a"]})
    groups = (
        frame.with_row_index("row").group_by("email", maintain_order=True).agg("row")
    )
    numbers = number_rows_by_group(groups["row"])

    # Groups in first-seen order: b, a, null, c.
    assert numbers.tolist() == [0, 1, 2, 0, 2, 3, 1]
    assert groups["email"].gather(numbers).to_list() == frame["email"].to_list()


def test_no_rows_give_no_numbers():
    rows = pl.Series("row", [], dtype=pl.List(pl.UInt32))
    assert number_rows_by_group(rows).tolist() == []
    assert number_rows_by_group(rows).dtype == np.int64
