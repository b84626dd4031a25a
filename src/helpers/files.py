"""Safe writes: every processed file appears whole or not at all.

Each writer fills a temporary file next to the target and moves it into place, so a
run killed halfway leaves the previous output readable. Files a person opens in a
spreadsheet have formula-like cells neutralised first: in a CSV with a leading
apostrophe, in an XLSX as quote-prefixed text.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; move it onto `target` on success.

    On any exception the temporary file is removed and `target` is untouched. A
    temporary file left by a killed run (it may hold a call list's phone numbers)
    is removed by the next write of the same target. The file gets the
    permissions any new file gets under the process's umask, not mkstemp's 0600.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}."
    for stale in target.parent.glob(f"{glob.escape(prefix)}*.part"):
        stale.unlink(missing_ok=True)
    handle, name = tempfile.mkstemp(prefix=prefix, suffix=".part", dir=target.parent)
    os.fchmod(handle, 0o666 & ~_current_umask())
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _current_umask() -> int:
    """Return the process's umask (reading it means setting it for a moment)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomically(target: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(temporary_path)`` and move the result onto `target`."""
    with atomic_path(target) as temporary:
        write(temporary)
    log.info("wrote %s", target)
    return Path(target)


def save_parquet(frame: pd.DataFrame, target: Path) -> Path:
    """Write `frame` as Parquet, atomically."""
    return write_atomically(target, lambda path: frame.to_parquet(path, index=False))


def none_if_nan(value) -> float | None:
    """Return `value` as a float, or None when it is missing (JSON has no NaN)."""
    return None if value is None or pd.isna(value) else float(value)


def save_json(payload: dict, target: Path) -> Path:
    """Write `payload` as indented JSON, atomically."""
    text = json.dumps(payload, indent=2, sort_keys=True, default=str)
    return write_atomically(target, lambda path: path.write_text(text, "utf-8"))


def save_text(text: str, target: Path) -> Path:
    """Write `text` as UTF-8, atomically."""
    return write_atomically(target, lambda path: path.write_text(text, "utf-8"))


def save_csv(frame: pd.DataFrame, target: Path) -> Path:
    """Write `frame` as CSV for people, formula-like cells neutralised, atomically."""
    safe = neutralise_formulas(frame)
    return write_atomically(target, lambda path: safe.to_csv(path, index=False))


def neutralise_formula(value: object) -> object:
    """Return `value` with a leading apostrophe when a spreadsheet would run it.

    Cells starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return are
    run as formulas by Excel, LibreOffice and Google Sheets (CSV injection). Numbers
    are left alone: only text is a risk.
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of `frame` with every text cell, and every column name,
    passed through :func:`neutralise_formula` (a name can come from the data:
    a code, an arm, a product)."""
    safe = frame.copy()
    safe.columns = [neutralise_formula(column) for column in safe.columns]
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(neutralise_formula)
    return safe


def require_workbook(path: Path) -> None:
    """Raise when an ``.xlsx`` file is not a workbook (empty, or a renamed CSV).

    Raises
    ------
    HeardInputError
        Naming the file, what it is instead and how to save it.
    """
    import zipfile

    from helpers.errors import HeardInputError

    if not zipfile.is_zipfile(path):
        raise HeardInputError(
            path,
            expected="an Excel workbook (.xlsx)",
            found="an empty file" if Path(path).stat().st_size == 0
            else "another kind of file",
            fix="save it from Excel or LibreOffice as .xlsx (a CSV needs the .csv "
            "extension)",
        )  # fmt: skip


def open_raw(path: Path, mode: str = "rb"):
    """Open a raw input file for reading only; raw files are never written."""
    if any(flag in mode for flag in "wax+"):
        raise ValueError(f"raw files are read-only; refused mode {mode!r} for {path}")
    return open(path, mode)  # noqa: SIM115 - the caller closes it


def save_xlsx(
    frame: pd.DataFrame,
    target: Path,
    *,
    sheet: str = "Sheet1",
    dropdowns: dict[str, list[str]] | None = None,
    column_widths: dict[str, int] | None = None,
) -> Path:
    """Write `frame` to one XLSX sheet for people to fill in, atomically.

    Parameters
    ----------
    frame : DataFrame
        The rows. Text that a spreadsheet would run as a formula is stored as
        text with Excel's quote prefix: it shows as typed (a caller sees
        ``+1 202 555 0143``, not ``'+1 202 555 0143``) and stays text when edited.
    target : Path
        The workbook to write.
    sheet : str
        The sheet's name.
    dropdowns : dict, optional
        Column name -> allowed values, offered as an in-cell drop-down list on
        every data row (Excel data validation; other values are refused).
    column_widths : dict, optional
        Column name -> width in characters.

    Returns
    -------
    Path
        `target`.
    """
    return write_atomically(
        target,
        lambda path: _write_workbook(
            frame, path, sheet, dropdowns or {}, column_widths
        ),
    )


def _write_workbook(frame, path, sheet, dropdowns, column_widths) -> None:
    from openpyxl import Workbook
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    # Lay out the header and rows as plain values.
    workbook = Workbook()
    worksheet = workbook.active
    worksheet.title = sheet
    worksheet.append(list(map(str, frame.columns)))
    for row in frame.itertuples(index=False):
        worksheet.append([None if pd.isna(v) else v for v in row])
    for row in worksheet.iter_rows():
        for cell in row:
            _keep_as_text(cell)
    worksheet.freeze_panes = "A2"

    # Offer each drop-down from a hidden list sheet, which has no length limit.
    last_row = max(len(frame) + 1, 2)
    lists = workbook.create_sheet("lists") if dropdowns else None
    for index, (column, values) in enumerate(dropdowns.items(), start=1):
        letter = get_column_letter(index)
        for position, value in enumerate(values, start=1):
            _keep_as_text(lists.cell(row=position, column=index, value=value))
        target = list(frame.columns).index(column)
        target_letter = get_column_letter(target + 1)
        validation = DataValidation(
            type="list",
            formula1=f"=lists!${letter}$1:${letter}${max(len(values), 1)}",
            allow_blank=True,
            showErrorMessage=True,
            errorTitle="Not in the list",
            error=f"Choose a value for {column} from the list.",
        )
        worksheet.add_data_validation(validation)
        validation.add(f"{target_letter}2:{target_letter}{last_row}")
    if lists is not None:
        lists.sheet_state = "hidden"

    for column, width in (column_widths or {}).items():
        position = list(frame.columns).index(column)
        letter = get_column_letter(position + 1)
        worksheet.column_dimensions[letter].width = width
    workbook.save(path)


def _keep_as_text(cell) -> None:
    """Store a formula-like text cell as text, quote-prefixed so that editing it
    in Excel or LibreOffice keeps it text instead of running it."""
    if isinstance(cell.value, str) and cell.value.startswith(FORMULA_STARTS):
        cell.data_type = "s"
        cell.quotePrefix = True
