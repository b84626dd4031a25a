"""``heard check``: every problem in a study folder, before anything runs.

Each step's own loader is the single place that knows its files' rules, so a check
runs the loaders and gathers what they raise (errors: the pipeline stops) and what
they log as warnings (a result must be read differently). Every file is checked on
its own, so one broken file does not hide the problems of the next.

Before a loader sees a text file, :func:`scan_text_file` checks what no loader
should have to: the file is not empty, its bytes are in one encoding, a CSV's rows
have as many cells as its header, no header repeats and no cell is implausibly long
(an unclosed quote swallows the rows after it). The notebooks and the report
command run the same checks first (:func:`ensure_checked`).
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from helpers.errors import HeardInputError
from helpers.study import Study, check_month, find_project_root, load_study

log = logging.getLogger(__name__)

CHECKED_VARIABLE = "HEARD_CHECKED"

SEVERITIES = ("error", "warning")
# Step 01's table of customers: with it, later steps can run without the exports.
STEP_01_OUTPUT = "customers_customer.parquet"
# Excel holds at most 32,767 characters in a cell; a longer one is nearly always
# an unclosed quote that swallowed the rows after it.
LONGEST_CELL = 32_767
CHUNK_BYTES = 1 << 20
# A UTF-8 multi-byte character: evidence that a file is meant to be UTF-8.
UTF8_CHARACTER = re.compile(rb"[\xc2-\xf4][\x80-\xbf]{1,3}")
TEXT_SUFFIXES = (".csv", ".tsv", ".txt", ".md", ".markdown", ".yml", ".yaml", ".vtt")


@dataclass(frozen=True)
class Problem:
    """One problem found in a study folder.

    Attributes
    ----------
    severity : str
        ``"error"`` (stops the pipeline) or ``"warning"`` (changes a reading).
    step : str
        The input it concerns (``exports``, ``calls``, ``coding``, …).
    message : str
        The whole message: file, row, column, expected, found and fix.
    month : str, optional
        The month checked, for monthly inputs.
    file, row, column, expected, found, fix : optional
        The parts of a :class:`~helpers.errors.HeardInputError`, when the
        problem came from one.
    """

    severity: str
    step: str
    message: str
    month: str | None = None
    file: str | None = None
    row: int | None = None
    column: str | None = None
    expected: str | None = None
    found: str | None = None
    fix: str | None = None

    @classmethod
    def from_error(
        cls,
        error: HeardInputError,
        *,
        step: str,
        month: str | None = None,
        severity: str = "error",
    ) -> Problem:
        """Return the problem a :class:`HeardInputError` describes."""
        return cls(
            severity, step, str(error), month, error.file, error.row, error.column,
            error.expected, None if error.found is None else str(error.found),
            error.fix,
        )  # fmt: skip


Task = tuple[Path, Callable[[], object]]


# --------------------------------------------------------------------------------------
# Running the checks
# --------------------------------------------------------------------------------------


def check_study(
    study: str | Path | Study, *, month: str | None = None, root: Path | None = None
) -> list[Problem]:
    """Return every problem in a study's raw folder, errors first.

    Parameters
    ----------
    study : str, Path or Study
        A study name under ``data/raw``, its folder, or a loaded study.
    month : str, optional
        Check this month's inputs only; every configured month when omitted.
        Inputs that are not monthly (codebook, do-not-call list, insight log)
        are checked either way.
    root : Path, optional
        The project folder.

    Returns
    -------
    list of Problem
        Errors first, then warnings, each in the order found.
    """
    try:
        loaded = study if isinstance(study, Study) else load_study(study, root=root)
        months = [check_month(month)] if month else loaded.months()
        for each in loaded.months():
            check_month(each)
    except HeardInputError as error:
        return [Problem.from_error(error, step="study")]
    except ValueError as error:
        return [Problem("error", "study", f"{month or 'study.yml months'}: {error}")]
    problems = []
    for step, check, is_monthly in registered_checks():
        for each_month in months if is_monthly else [None]:
            problems.extend(run_check(step, check, loaded, each_month))
    return sorted(problems, key=lambda p: SEVERITIES.index(p.severity))


def run_check(step: str, check: Callable, study: Study, month: str | None) -> list:
    """Run one step's check, each of its files on its own.

    Parameters
    ----------
    step : str
        The step's name, carried by every problem.
    check : callable
        ``check(study, month)`` yielding ``(file, task)`` pairs; each task runs a
        loader on one file and may return problems of its own.
    study : Study
        The study.
    month : str or None
        The month, or None for inputs that are not monthly.

    Returns
    -------
    list of Problem
        A :class:`HeardInputError` becomes an error, a logged warning a warning,
        any other exception an error naming the file (a loader that crashed
        instead of explaining: a bug to report, but never a traceback here).
    """
    problems: list[Problem] = []
    with captured_warnings() as warnings:
        try:
            for file, task in check(study, month):
                problems.extend(_run_task(task, file, step=step, month=month))
        except HeardInputError as error:
            problems.append(Problem.from_error(error, step=step, month=month))
    problems.extend(Problem("warning", step, text, month) for text in warnings)
    return problems


def _run_task(task: Callable, file: Path, *, step: str, month: str | None) -> list:
    """Run one task; return the problems it raised or returned."""
    try:
        found = task()
    except HeardInputError as error:
        return [Problem.from_error(error, step=step, month=month)]
    except Exception as error:  # noqa: BLE001 - a crash must still be reported
        log.debug("checking %s crashed", file, exc_info=True)
        return [
            Problem(
                "error", step,
                f"{file}: could not be read ({type(error).__name__}: {error}). "
                "Fix: check the file opens in a spreadsheet or text editor and "
                "was exported as the format its extension says",
                month, str(file),
            )
        ]  # fmt: skip
    found = found if isinstance(found, list) else []
    return [replace(p, step=step, month=month) for p in found]


@contextmanager
def captured_warnings() -> Iterator[list[str]]:
    """Collect, instead of printing, the warnings ``helpers`` modules log.

    Yields
    ------
    list of str
        Filled with each warning's message while the block runs; the
        ``helpers`` logger does not pass them on to the root logger meanwhile.
    """
    messages: list[str] = []

    class Collector(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = Collector(level=logging.WARNING)
    logger = logging.getLogger("helpers")
    propagates = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagates


def format_problems(problems: list[Problem], *, study: Study | None = None) -> str:
    """Return the problems as one readable list, grouped by severity.

    Parameters
    ----------
    problems : list of Problem
        From :func:`check_study`.
    study : Study, optional
        Paths are shown relative to its folder; else to the project folder.

    Returns
    -------
    str
        A count line, then errors (where: file, row, column; then expected,
        found and fix on their own lines), then warnings one line each; or
        ``No problems found.``
    """
    if not problems:
        return "No problems found."
    n_errors = sum(p.severity == "error" for p in problems)
    lines = [f"{n_errors} error(s), {len(problems) - n_errors} warning(s)."]
    headings = {
        "error": "Errors (the pipeline stops until they are fixed)",
        "warning": "Warnings (results run, but read them with these in mind)",
    }
    for severity in SEVERITIES:
        chosen = [p for p in problems if p.severity == severity]
        if chosen:
            lines += ["", f"{headings[severity]}:"]
            lines += [
                _format_one(number, p, study) for number, p in enumerate(chosen, 1)
            ]
    return "\n".join(lines)


def _format_one(number: int, problem: Problem, study: Study | None) -> str:
    tag = f"[{problem.step}{' ' + problem.month if problem.month else ''}]"
    if problem.expected is None:
        return f"  {number}. {tag} {_relative(problem.message, study)}"
    where = [_relative(problem.file, study)]
    if problem.row is not None:
        where.append(f"row {problem.row}")
    if problem.column is not None:
        where.append(f"column '{problem.column}'")
    lines = [f"  {number}. {tag} {', '.join(where)}"]
    lines.append(f"       expected: {problem.expected}")
    if problem.found is not None:
        lines.append(f"       found:    {_short(problem.found)}")
    if problem.fix:
        lines.append(f"       fix:      {problem.fix}")
    return "\n".join(lines)


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def _relative(text: str, study: Study | None) -> str:
    folder = study.raw_dir if study is not None else find_project_root()
    return str(text).replace(f"{folder}/", "")


def ensure_checked(study: Study, month: str, *, reuse: bool = False) -> None:
    """Raise when :func:`check_study` finds errors for `month`; log its warnings.

    The report command and the notebooks call this first. A passed check is
    remembered in ``$HEARD_CHECKED``; with ``reuse=True`` (the notebooks) a check
    already passed in this process or its parent (the report that runs the
    notebooks) is not repeated.

    Raises
    ------
    HeardInputError
        Naming the study folder and listing every error.
    """
    if reuse and os.environ.get(CHECKED_VARIABLE) == _checked_mark(study, month):
        return
    problems = check_study(study, month=month, root=find_project_root())
    for problem in problems:
        if problem.severity == "warning":
            log.warning("[%s] %s", problem.step, problem.message)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise HeardInputError(
            study.raw_dir,
            expected="a study folder without errors",
            found=f"{len(errors)} error(s)",
            fix=f"correct these, then run `heard check {study.name} --month {month}`"
            f":\n{format_problems(errors)}",
        )
    remember_checked(study, month)


def remember_checked(study: Study, month: str) -> None:
    """Record in ``$HEARD_CHECKED`` that `month` of `study` passed its checks."""
    os.environ[CHECKED_VARIABLE] = _checked_mark(study, month)


def _checked_mark(study: Study, month: str) -> str:
    return f"{study.raw_dir}:{month}"


# --------------------------------------------------------------------------------------
# What every raw text file must be, whichever step reads it
# --------------------------------------------------------------------------------------


def scan_text_file(
    path: Path, *, encodings: tuple[str, ...] = ("utf-8",), is_table: bool = True
) -> list[Problem]:
    """Return the problems of one raw text file that no loader should meet.

    Parameters
    ----------
    path : Path
        A raw CSV (or Markdown, YAML, transcript) file; it is only read.
    encodings : tuple of str
        The encodings the step's loader reads (``utf-8`` always; exports also
        ``cp1252``).
    is_table : bool
        Check the file as a CSV: header, row lengths, repeated headers, cell
        lengths.

    Returns
    -------
    list of Problem
        Errors (``step`` is left as ``"file"``): empty file, bytes in two
        encodings or an encoding the loader cannot read, a row with more or
        fewer cells than the header, a repeated header. Warnings: a header with
        no rows, a cell longer than a spreadsheet holds.
    """
    data = Path(path).read_bytes()
    if not data.strip():
        return [_file_error(path, 1, None, "content", "an empty file",
                            "export or save the file again")]  # fmt: skip
    text, problem = _decode_raw(data, path, encodings=encodings)
    if problem is not None:
        return [problem]
    return _scan_table(text, path) if is_table else []


def _decode_raw(data: bytes, path: Path, *, encodings: tuple[str, ...]):
    """Return ``(text, None)``, or ``(None, problem)`` when the bytes mix
    encodings or are in one the loader does not read."""
    if b"\x00" in data[:CHUNK_BYTES]:
        return None, _file_error(
            path, 1, None, "text in UTF-8", "UTF-16 text or binary data (NUL bytes)",
            "save the file as 'CSV UTF-8' (Excel: File > Save As) or as UTF-8 "
            "(text editors)",
        )  # fmt: skip
    try:
        return codecs.decode(data, "utf-8-sig"), None
    except UnicodeDecodeError as error:
        start = error.start
    row = data.count(b"\n", 0, start) + 1
    if UTF8_CHARACTER.search(data[:start]) or UTF8_CHARACTER.search(data[start + 1 :]):
        return None, _file_error(
            path, row, None, "text in one encoding (UTF-8)",
            f"UTF-8 text mixed with other bytes ({data[start]:#04x} at line {row}), "
            "as when rows are pasted from a Windows program",
            "open the file in a text editor, correct that line and save as UTF-8",
        )  # fmt: skip
    if "cp1252" in encodings:
        return codecs.decode(data, "cp1252", errors="replace"), None
    return None, _file_error(
        path, row, None, "UTF-8 text",
        f"byte {data[start]:#04x} at line {row}, not UTF-8 (Windows-1252?)",
        "save the file as 'CSV UTF-8' (Excel) or UTF-8 (text editors)",
    )  # fmt: skip


def _scan_table(text: str, path: Path) -> list[Problem]:
    """Return the problems of a CSV's shape: header, row lengths, long cells."""
    sample = text[:65_536]
    delimiter = max((",", ";", "\t"), key=lambda d: sample.split("\n", 1)[0].count(d))
    limit = csv.field_size_limit()
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        stream = io.StringIO(text.lstrip("\ufeff"), newline="")
        rows = csv.reader(stream, delimiter=delimiter)
        header = [cell.strip() for cell in next(rows, [])]
        problems = _check_header(header, path)
        n_rows = 0
        for index, row in enumerate(rows, start=2):
            n_rows += 1
            problems.extend(_check_row(row, header, path, index))
            if sum(p.severity == "error" for p in problems) >= 5:
                break
    finally:
        csv.field_size_limit(limit)
    if n_rows == 0 and not problems:
        log.warning("%s: a header and no rows; it adds nothing", path.name)
    return problems


def _check_header(header: list[str], path: Path) -> list[Problem]:
    """Return an error for each header that appears twice (case and spaces aside)."""
    seen: dict[str, int] = {}
    problems = []
    for position, name in enumerate(header, start=1):
        key = name.casefold()
        if key in seen and key:
            problems.append(_file_error(
                path, 1, name, "each column name once",
                f"'{name}' in columns {seen[key]} and {position}",
                "delete the column that should not be there, or rename it",
            ))  # fmt: skip
        seen.setdefault(key, position)
    return problems


def _check_row(row: list[str], header: list[str], path: Path, index: int) -> list:
    """Return problems with one CSV row: cells missing or extra, a giant cell."""
    problems = []
    if row and len(row) < len(header):
        problems.append(_file_error(
            path, index, header[len(row)],
            f"{len(header)} cells, as many as the header",
            f"{len(row)} cells: the row stops before '{header[len(row)]}'",
            "the row was cut short; export the file again or complete the row",
        ))  # fmt: skip
    elif len(row) > len(header) and any(cell.strip() for cell in row[len(header) :]):
        problems.append(_file_error(
            path, index, None, f"{len(header)} cells, as many as the header",
            f"{len(row)} cells with text beyond the last column",
            "a comma inside a value needs quotes; export the file again",
        ))  # fmt: skip
    for position, cell in enumerate(row):
        if len(cell) > LONGEST_CELL:
            column = header[position] if position < len(header) else None
            log.warning(
                "%s, row %d, column %r: a cell of %s characters (a spreadsheet "
                "holds %s); check for an unclosed quote",
                path.name, index, column, f"{len(cell):,}", f"{LONGEST_CELL:,}",
            )  # fmt: skip
    return problems


def _file_error(path, row, column, expected, found, fix) -> Problem:
    error = HeardInputError(
        path, row=row, column=column, expected=expected, found=found, fix=fix
    )
    return Problem.from_error(error, step="file")


# --------------------------------------------------------------------------------------
# One check per input, each calling the step's own loader file by file
# --------------------------------------------------------------------------------------


def registered_checks() -> list[tuple[str, Callable, bool]]:
    """Return the checks :func:`check_study` runs, in order.

    Returns
    -------
    list of tuple
        ``(step, check, is_monthly)``: ``check(study, month)`` yields one
        ``(file, task)`` per raw file, each task calling the step's own loader;
        checks that are not monthly run once with month None.
    """
    return [
        ("settings", _check_settings, False),
        ("exports", _check_exports, True),
        ("do-not-call", _check_do_not_call, False),
        ("calls", _check_calls, True),
        ("conversations", _check_conversations, True),
        ("codebook", _check_codebook, False),
        ("coding", _check_coding, True),
        ("predictions", _check_predictions, True),
        ("insights", _check_insights, False),
        ("experiments", _check_experiments, True),
    ]


def _check_settings(study: Study, month: str | None) -> Iterator[Task]:
    from helpers.privacy import key_path
    from helpers.settings import check_settings

    path = study.raw("study.yml")

    def task() -> list:
        if not study.months():
            log.warning("study.yml: no months configured; add a months: block "
                        "(docs/study-folder.md) before running a step")  # fmt: skip
        problems = check_settings(study.config, path)
        return [Problem.from_error(error, step="settings") for error in problems]

    yield path, task
    yield key_path(), _check_key


def _check_key() -> list:
    """Return an error when the pseudonymisation key exists but is unusable (a
    check never creates it: the first step that needs it does)."""
    from helpers.privacy import key_path, load_key

    if key_path().exists():
        load_key()
    return []


def _scanned(path: Path, load: Callable, **scan) -> Callable[[], list]:
    """Return a task: scan the text file, and run `load` only if it is sound."""

    def task() -> list:
        problems = scan_text_file(path, **scan)
        if any(p.severity == "error" for p in problems):
            return problems
        load()
        return problems

    return task


def _files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in suffixes
        and not p.name.startswith((".", "~$"))
    )  # fmt: skip


def _check_exports(study: Study, month: str | None) -> Iterator[Task]:
    from helpers.exports import EXPORT_SUFFIXES, read_export

    folder = study.raw("exports", month)
    files = _files(folder, EXPORT_SUFFIXES)
    if not files and study.processed(month, STEP_01_OUTPUT).exists():
        log.warning(
            "exports/%s: no store exports; step 01's earlier outputs are used as "
            "they are, and step 01 itself cannot run again", month,
        )  # fmt: skip
    elif not files:
        raise _no_exports_error(study, folder, EXPORT_SUFFIXES)
    for path in files:
        load = lambda path=path: read_export(path, config=study.config)  # noqa: E731
        if path.suffix.lower() == ".xlsx":
            yield path, lambda path=path, load=load: _check_workbook(path) or load()
        else:
            yield path, _scanned(path, load, encodings=("utf-8", "cp1252"))


def _no_exports_error(study: Study, folder: Path, suffixes: tuple) -> HeardInputError:
    """The error for a month without store exports: step 01 cannot run."""
    months = study.raw("exports").glob("*")
    ready = sorted(month.name for month in months if _files(month, suffixes))
    return HeardInputError(
        folder,
        expected="the store's customers, orders and abandoned-checkouts exports "
        "(CSV or XLSX), which step 01 starts from",
        found="no export files",
        fix="download the month's exports into this folder, or choose a month "
        "that has them: " + (", ".join(ready) or "none yet"),
    )


def _check_do_not_call(study: Study, month: str | None) -> Iterator[Task]:
    from helpers.exports import load_do_not_call

    path = study.raw("do-not-call.csv")
    if path.exists():
        load = lambda: load_do_not_call(study)  # noqa: E731
        yield path, _scanned(path, load, encodings=("utf-8", "cp1252"))


def _check_calls(study: Study, month: str | None) -> Iterator[Task]:
    from helpers.calls import CALL_FILE_SUFFIXES

    # The loader reads the month's logs together: only once each file is sound.
    files = _files(study.raw("calls", month), CALL_FILE_SUFFIXES)
    found: list[Problem] = []
    for path in files:

        def task(path=path) -> list:
            is_csv = path.suffix.lower() == ".csv"
            problems = scan_text_file(path) if is_csv else _check_workbook(path)
            found.extend(p for p in problems if p.severity == "error")
            return problems

        yield path, task
    if files:
        yield (
            study.raw("calls", month),
            lambda: [] if found else _call_log_problems(study, month),
        )


def _call_log_problems(study: Study, month: str | None) -> list[Problem]:
    """Return each row problem of the month's call logs as its own error (the
    first ``limit`` of them, then a count of the rest), and each recovered-order
    reference the orders do not bear out as a warning."""
    from helpers.calls import check_call_logs
    from helpers.errors import HeardInputGroupError

    try:
        flagged = check_call_logs(study, month)
    except HeardInputGroupError as errors:
        shown = errors.problems[: errors.limit]
        problems = [Problem.from_error(error, step="calls") for error in shown]
        if len(errors.problems) > len(shown):
            more = len(errors.problems) - len(shown)
            problems.append(Problem("error", "calls", f"… and {more} more"))
        return problems
    return [
        Problem.from_error(error, step="calls", severity="warning") for error in flagged
    ]


def _check_conversations(study: Study, month: str | None) -> Iterator[Task]:
    from helpers.coding import read_conversation_file

    folder = study.raw("conversations", month)
    for path in _files(folder, (".md", ".markdown", ".vtt", ".srt", ".txt", ".csv")):
        load = lambda path=path: _warn_odd_dates(read_conversation_file(path), month)  # noqa: E731
        yield path, _scanned(path, load, is_table=path.suffix.lower() == ".csv")


def _warn_odd_dates(records: list[dict], month: str | None) -> None:
    """Warn about conversations dated in the future or outside their month."""
    today = pd.Timestamp.now().normalize()
    for record in records:
        date = pd.Timestamp(record["fields"]["date"])
        where = f"{Path(record['file']).name}, row {record['lines'].get('date', 1)}"
        if date > today:
            log.warning("%s: date %s is in the future", where, date.date())
        elif month and date.strftime("%Y-%m") != month:
            log.warning(
                "%s: date %s is outside %s, the month folder it sits in",
                where, date.date(), month,
            )  # fmt: skip


def _check_codebook(study: Study, month: str | None) -> Iterator[Task]:
    from helpers.codebook import load_codebook

    path = study.raw("codebook.yml")
    if path.exists():
        load = lambda: load_codebook(path)  # noqa: E731
        yield path, _scanned(path, load, is_table=False)


def _check_coding(study: Study, month: str | None) -> Iterator[Task]:
    from helpers.codebook import load_codebook
    from helpers.coding import RECONCILED_SHEET, read_coding_sheet

    sheets = [
        p for p in _files(study.raw("coding", month), (".xlsx",))
        if p.name != RECONCILED_SHEET
    ]  # fmt: skip
    if not sheets:
        return
    try:
        codebook = load_codebook(study.raw("codebook.yml"))
    except (HeardInputError, OSError):
        log.warning("coding/%s: sheets not checked, the codebook does not load", month)
        return
    excerpts, redacted = _month_excerpts(study, month)
    read = {}
    for path in sheets:

        def task(path=path) -> list:
            problems = _check_workbook(path)
            if not problems:
                read[path.stem] = read_coding_sheet(
                    path, codebook, excerpts=excerpts, redacted=redacted
                )
            return problems

        yield path, task
    yield study.raw("coding", month), lambda: _warn_recoded(study, month, read)


def _month_excerpts(study: Study, month: str) -> tuple:
    """Return the month's excerpts and their redacted copy, split as step 03 splits
    them, so sheets whose ids or texts no longer match the notes are caught; or
    ``(None, None)`` when the notes do not load (their own check says why)."""
    from helpers.coding import load_conversations
    from helpers.coding_step import read_coding_settings, split_month_excerpts

    settings = read_coding_settings(study)
    try:
        conversations = load_conversations(study, month)
    except HeardInputError:
        log.warning(
            "coding/%s: sheets not compared with the notes, which do not load", month
        )
        return None, None
    return split_month_excerpts(conversations, settings=settings)


def _check_predictions(study: Study, month: str | None) -> Iterator[Task]:
    path = study.raw("predictions", f"{month}.csv")
    if path.exists():
        from helpers.insights import load_predictions

        yield path, _scanned(path, lambda: load_predictions(path, month=month))


def _check_insights(study: Study, month: str | None) -> Iterator[Task]:
    path = study.raw("insights.csv")
    if path.exists():
        from helpers.insights import load_insights

        yield path, _scanned(path, lambda: load_insights(path))


def _check_experiments(study: Study, month: str | None) -> Iterator[Task]:
    for name in study.month_config(month).get("experiments") or []:
        path = study.raw("experiments", name, "experiment.yml")

        def task(path=path, name=name) -> None:
            from helpers.experiments import load_listed_experiment, read_results

            if not path.exists():
                raise HeardInputError(
                    path,
                    expected=f"the definition of experiment {path.parent.name}, "
                    f"named in study.yml months.{month}.experiments",
                    found="nothing there",
                    fix="write experiment.yml (docs/study-folder.md, 04) or remove "
                    "the name from the month's experiments",
                )
            # As the step loads it: a name unlike the folder's stops the step too.
            read_results(load_listed_experiment(study, name))

        yield path, task


def _check_workbook(path: Path) -> list[Problem]:
    """Return an error when an ``.xlsx`` is not a workbook (empty, or renamed)."""
    from helpers.files import require_workbook

    try:
        require_workbook(path)
    except HeardInputError as error:
        return [Problem.from_error(error, step="file")]
    return []


# --------------------------------------------------------------------------------------
# Coding sheets read again: what changed since the last run
# --------------------------------------------------------------------------------------

RECODED_COLUMNS = ["coder", "excerpt_id", "previous", "current"]


def compare_codings(
    previous: pd.DataFrame, current: pd.DataFrame, *, coders=None
) -> pd.DataFrame:
    """Return the excerpts whose codes differ between two readings of the sheets.

    Parameters
    ----------
    previous : DataFrame
        Codings from the last run (``coded-excerpts_excerpt.parquet``):
        ``coder``, ``excerpt_id``, ``code``, ``is_suggestion``.
    current : DataFrame
        Codings read from the sheets now, same columns.

    Returns
    -------
    DataFrame
        ``coder``, ``excerpt_id``, ``previous`` and ``current`` (codes joined by
        ``;``, sorted; empty text when the excerpt is absent or not yet coded).
        Only `coders` are compared (those in `current` when omitted; pass the
        coders whose sheets exist, so a sheet emptied of codes still counts);
        suggestions are ignored.
    """

    def codes(frame: pd.DataFrame) -> pd.Series:
        human = frame[~frame["is_suggestion"].astype(bool)]
        return human.groupby(["coder", "excerpt_id"])["code"].agg(
            lambda values: ";".join(sorted(set(map(str, values))))
        )

    both = pd.concat(
        {"previous": codes(previous), "current": codes(current)}, axis=1
    ).fillna("")
    coders = set(current["coder"]) if coders is None else set(coders)
    both = both[both.index.get_level_values("coder").isin(coders)]
    changed = both[both["previous"] != both["current"]].reset_index()
    return changed.reindex(columns=RECODED_COLUMNS)


def _warn_recoded(study: Study, month: str, read: dict) -> None:
    """Warn when sheets read now drop or change codes an earlier run recorded.

    A coder who overwrote their sheet with a blank template would otherwise
    lose their work silently: the earlier codes stay in the processed file
    until the next run, and this warning names them before it runs.
    """
    path = study.processed(month, "coded-excerpts_excerpt.parquet")
    if not read or not path.exists():
        return
    current = pd.concat(read.values(), ignore_index=True)
    changed = compare_codings(pd.read_parquet(path), current, coders=set(read))
    lost = changed[changed["current"].eq("")]
    if len(lost):
        log.warning(
            "coding/%s: %d excerpt codes recorded by the last run are missing "
            "from the sheets now (coders %s, e.g. %s); if a sheet was overwritten, "
            "restore it before running step 03",
            month, len(lost), ", ".join(sorted(lost["coder"].unique())),
            lost["excerpt_id"].iloc[0],
        )  # fmt: skip
    recoded = changed[changed["current"].ne("") & changed["previous"].ne("")]
    if len(recoded):
        log.warning(
            "coding/%s: %d excerpts were coded differently at the last run "
            "(e.g. %s by %s: %s, now %s); step 03 will use the sheets as they are",
            month, len(recoded), recoded["excerpt_id"].iloc[0],
            recoded["coder"].iloc[0], recoded["previous"].iloc[0],
            recoded["current"].iloc[0],
        )  # fmt: skip


# --------------------------------------------------------------------------------------
# Nothing personal outside raw data and the call list
# --------------------------------------------------------------------------------------

CALL_LIST_PREFIX = "call-list_"
RENDERED_SUFFIXES = (".html", ".typ", ".md", ".pdf")


def list_scanned_outputs(
    study: Study, *, month: str | None = None, root: Path | None = None
) -> list[Path]:
    """Return the files :func:`scan_outputs` looks into, in a stable order.

    Parameters
    ----------
    study : Study
        The study; every file under ``data/processed/<study>/`` (or the month's
        folder) except the call list, the one file meant to carry phone numbers.
    month : str, optional
        This month's processed folder only.
    root : Path, optional
        The project folder, for ``reports/_output/<study>/`` (HTML, Typst,
        Markdown and PDF).

    Returns
    -------
    list of Path
        The processed files, then the rendered ones.
    """
    processed = study.processed(month) if month else study.processed_root
    paths = [
        p for p in sorted(processed.rglob("*"))
        if p.is_file() and not p.name.startswith((CALL_LIST_PREFIX, "."))
    ]  # fmt: skip
    rendered = Path(root or find_project_root()) / "reports" / "_output" / study.name
    return paths + [
        p for p in sorted(rendered.rglob("*")) if p.suffix in RENDERED_SUFFIXES
    ]


def scan_outputs(
    study: Study, *, month: str | None = None, root: Path | None = None
) -> list[dict]:
    """Return e-mails and phones found in a study's processed files and reports.

    Parameters
    ----------
    study, month, root
        As for :func:`list_scanned_outputs`, which names the files scanned.

    Returns
    -------
    list of dict
        :func:`helpers.privacy.scan_for_pii` findings (``file``, ``where``,
        ``found``); empty when clean.
    """
    from helpers.privacy import scan_for_pii

    findings = scan_for_pii(list_scanned_outputs(study, month=month, root=root))
    if findings:
        log.warning(
            "%d e-mails or phone numbers outside raw data, e.g. in %s",
            len(findings), findings[0]["file"],
        )  # fmt: skip
    return findings


def ensure_private(
    study: Study, *, month: str | None = None, root: Path | None = None
) -> None:
    """Raise when a processed file or the rendered report shows an e-mail or phone.

    Raises
    ------
    HeardInputError
        Naming the first file, where in it, what was found and how many.
    """
    findings = scan_outputs(study, month=month, root=root)
    if findings:
        first = findings[0]
        raise HeardInputError(
            first["file"],
            column=first["where"].removeprefix("column ")
            if first["where"].startswith("column ")
            else None,
            expected="no e-mail address or phone number outside data/raw and the "
            "call list",
            found=f"{len(findings)} match(es), e.g. {first['found']!r}",
            fix="redact the text where it enters (helpers.privacy.redact), delete "
            "the file and run the step again",
        )
