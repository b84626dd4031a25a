"""``heard check``: every problem in a study folder, before anything runs.

Each step's own loader is the single place that knows its files' rules, so a check
runs the loaders and gathers what they raise (errors: the pipeline stops) and what
they log as warnings (a result must be read differently). The notebooks and the
report command run the same checks first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from helpers.errors import HeardInputError
from helpers.study import Study, find_project_root, load_study

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    """One problem found in a study folder.

    Attributes
    ----------
    severity : str
        ``"error"`` (stops the pipeline) or ``"warning"`` (changes a reading).
    step : str
        The research step whose input it is.
    message : str
        File, row, column, what was expected, what was found and how to fix it.
    """

    severity: str
    step: str
    message: str


def check_study(
    study: str | Path | Study, *, month: str | None = None, root: Path | None = None
) -> list[Problem]:
    """Return every problem in a study's raw folder, errors first.

    Parameters
    ----------
    study : str, Path or Study
        A study name under ``data/raw``, its folder, or a loaded study.
    month : str, optional
        Check this month only; every configured month when omitted.
    root : Path, optional
        The project folder.

    Returns
    -------
    list of Problem
    """
    try:
        loaded = study if isinstance(study, Study) else load_study(study, root=root)
    except HeardInputError as error:
        return [Problem("error", "study", str(error))]
    months = [month] if month else loaded.months()
    problems = []
    for name, check in registered_checks():
        for each_month in months or [None]:
            problems.extend(run_check(name, check, loaded, each_month))
    return sorted(problems, key=lambda p: p.severity != "error")


def run_check(name: str, check: Callable, study: Study, month: str | None) -> list:
    """Run one step's check; turn its errors and logged warnings into problems."""
    with captured_warnings() as warnings:
        try:
            check(study, month)
        except HeardInputError as error:
            return [Problem("error", name, str(error))] + [
                Problem("warning", name, text) for text in warnings
            ]
    return [Problem("warning", name, text) for text in warnings]


@contextmanager
def captured_warnings() -> Iterator[list[str]]:
    """Collect the warnings that ``helpers`` modules log inside the block."""
    messages: list[str] = []

    class Collector(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = Collector(level=logging.WARNING)
    logger = logging.getLogger("helpers")
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def format_problems(problems: list[Problem]) -> str:
    """Return the problems as one readable list, grouped by severity."""
    if not problems:
        return "No problems found."
    lines = []
    for severity, heading in (("error", "Errors"), ("warning", "Warnings")):
        chosen = [p for p in problems if p.severity == severity]
        if chosen:
            lines.append(f"{heading} ({len(chosen)}):")
            lines.extend(f"  [{p.step}] {p.message}" for p in chosen)
    return "\n".join(lines)


def registered_checks() -> list[tuple[str, Callable]]:
    """Return ``(step, check)`` pairs; each check loads one step's raw inputs."""
    return [
        ("exports", _check_exports),
    ]


def _check_exports(study: Study, month: str | None) -> None:
    from helpers.exports import load_store_exports

    if month and study.raw("exports", month).is_dir():
        load_store_exports(study, month)


def ensure_checked(study: Study, month: str) -> None:
    """Raise the first error :func:`check_study` finds for `month`; log warnings."""
    problems = check_study(study, month=month, root=find_project_root())
    for problem in problems:
        if problem.severity == "warning":
            log.warning("[%s] %s", problem.step, problem.message)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise HeardInputError(
            study.raw_dir,
            expected="a study folder without errors",
            found=f"{len(errors)} error(s), the first: {errors[0].message}",
            fix=f"run `heard check {study.name} --month {month}` to see them all",
        )
