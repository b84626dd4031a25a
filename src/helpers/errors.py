"""Errors for bad input, with messages a researcher can act on: one problem, or
every problem of a file at once."""

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


class HeardInputGroupError(HeardInputError):
    """Several problems in one input, raised together so all are fixed in one go.

    Parameters
    ----------
    problems : sequence of HeardInputError
        Every problem found, in the order they should be read (at least one).
    limit : int
        How many the message lists; the rest are counted, not shown.

    Attributes
    ----------
    problems : list of HeardInputError
        All of them, however many the message lists.

    Notes
    -----
    ``file`` is the problems' file when they share one, else their folder;
    ``row``, ``column``, ``expected``, ``found`` and ``fix`` summarise the lot.
    Use :func:`raise_problems` to raise one problem as itself.
    """

    def __init__(self, problems, *, limit: int = 20) -> None:
        self.problems = list(problems)
        self.limit = limit
        files = {problem.file for problem in self.problems}
        rows = sorted({problem.row for problem in self.problems if problem.row})
        super().__init__(
            files.pop() if len(files) == 1 else Path(self.problems[0].file).parent,
            expected="every row to follow the file's rules",
            found=f"{len(self.problems)} problems in {len(rows)} rows",
            fix="correct each problem listed, then read the file again",
        )

    def _compose(self) -> str:
        shown = self.problems[: self.limit]
        lines = [f"{self.file}: {len(self.problems)} problems (fix each one):"]
        lines += [f"  - {problem}" for problem in shown]
        if len(self.problems) > len(shown):
            lines.append(f"  … and {len(self.problems) - len(shown)} more")
        return "\n".join(lines)


def raise_problems(problems, *, limit: int = 20) -> None:
    """Raise the problems found, if any: one as itself, several together.

    Parameters
    ----------
    problems : sequence of HeardInputError
        Problems gathered while reading an input; a :class:`HeardInputGroupError`
        among them contributes each of its own.
    limit : int
        How many a combined message lists.

    Raises
    ------
    HeardInputError
        The only problem.
    HeardInputGroupError
        When there are several.
    """
    flat = [
        each for problem in problems for each in getattr(problem, "problems", [problem])
    ]
    if len(flat) == 1:
        raise flat[0]
    if flat:
        raise HeardInputGroupError(flat, limit=limit)
