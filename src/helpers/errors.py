"""One error type for bad input, with a message a researcher can act on."""

from __future__ import annotations

from pathlib import Path


class HeardInputError(ValueError):
    """Bad input: names the file, row and column, what was expected and the fix.

    Parameters
    ----------
    file : str or Path
        The file that holds the problem.
    expected : str
        What Heard expected to find.
    found : object, optional
        What it found instead (shortened when long).
    row : int, optional
        The row as a spreadsheet shows it: the header is row 1, the first data
        row is row 2.
    column : str, optional
        The column's name as it stands in the file.
    fix : str, optional
        How to fix it.
    """

    def __init__(
        self,
        file: str | Path,
        *,
        expected: str,
        found: object = None,
        row: int | None = None,
        column: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.file = str(file)
        self.row = row
        self.column = column
        self.expected = expected
        self.found = found
        self.fix = fix
        super().__init__(self._compose())

    def _compose(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        message = f"{', '.join(where)}: expected {self.expected}"
        if self.found is not None:
            message += f"; found {shorten(self.found)}"
        if self.fix:
            message += f". Fix: {self.fix}"
        return message


def shorten(value: object, *, limit: int = 80) -> str:
    """Return `value` as a quoted string of at most `limit` characters."""
    text = repr(value) if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 12]}… ({len(text):,} characters)"
