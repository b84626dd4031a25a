"""Polars helpers the step modules share."""

from __future__ import annotations

import numpy as np
import polars as pl


def number_rows_by_group(rows: pl.Series) -> np.ndarray:
    """Return, for each row a group-by gathered, the number of its group.

    Parameters
    ----------
    rows : polars Series
        A group-by's list of row numbers per group (``agg("row")`` after
        ``with_row_index("row")``), in group order; every row in exactly one.

    Returns
    -------
    ndarray
        int64, one value per row: the position of its group in `rows`.

    Notes
    -----
    Gathering per-group results by these numbers spreads them back to the rows
    without a join back on the grouping columns, which are often long texts.
    """
    numbers = np.empty(rows.list.len().sum(), dtype=np.int64)
    numbers[rows.explode().to_numpy()] = np.repeat(
        np.arange(len(rows)), rows.list.len().to_numpy()
    )
    return numbers
