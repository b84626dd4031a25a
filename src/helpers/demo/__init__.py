"""The demo study: a complete, invented store researched for two months.

``heard demo`` calls :func:`write_demo_study`, which writes ``data/raw/demo/`` laid
out as ``docs/study-folder.md`` says: exports, a do-not-call list, call logs,
conversation notes, a codebook, coding sheets, predictions, an insight log and one
messaging experiment per month (2026-10 and 2026-11). Every random draw comes from
numpy generators seeded from :data:`SEED`, so two runs write the same content
except for the customer keys, which depend on the machine's pseudonymisation key.
The CSV, YAML and Markdown files are the same bytes; the workbooks are not, since
openpyxl stamps them with the time they were written.

Timeline of a demo month M: the call list is drawn by step 01
(``helpers.segments.plan_call_list``) from the exports as they stood at M's first
moment (UTC); callers dial from the 3rd to about the 20th; a recovered order falls
within ``calls.recovery_window_days`` of the customer's reference time; the files in
``exports/<M>/`` are the month-end download, so they hold M's recovered orders and
M's later checkouts. Step 01 re-run on them draws the same list only when it ignores
orders and checkouts created on or after the month's first moment.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

SEED = 20261101
# The builder reads its own exports back through these loaders; the rows they
# reject are the demo's deliberate flaws, which `heard check` reports.
LOADERS = ("helpers.exports", "helpers.segments")


def write_demo_study(folder: Path, *, force: bool = False) -> Path:
    """Write the demo study into `folder`, unless one is already there.

    Parameters
    ----------
    folder : Path
        The study's raw folder, normally ``data/raw/demo``.
    force : bool
        Replace an existing demo study.

    Returns
    -------
    Path
        `folder`.

    Notes
    -----
    The study is built in a temporary folder beside `folder` and moved into place
    only when complete, so an interrupted run never leaves half a study. Without
    `force` an existing, non-empty `folder` is left untouched (logged).
    """
    from helpers.demo.build import build_demo_study

    folder = Path(folder)
    if folder.is_dir() and any(folder.iterdir()) and not force:
        log.warning(
            "a demo study already exists in %s; left alone (use --force to rewrite)",
            folder,
        )
        return folder

    # Build beside the target, then swap it in.
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        with quiet_loaders():
            build_demo_study(staging / folder.name, seed=SEED)
        retired = staging / "previous"
        if folder.exists():
            folder.rename(retired)
        (staging / folder.name).rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("wrote the demo study to %s", folder)
    return folder


@contextlib.contextmanager
def quiet_loaders() -> Iterator[None]:
    """Hold back the loaders' warnings while the builder reads its own exports."""
    loggers = [logging.getLogger(name) for name in LOADERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
