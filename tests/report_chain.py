"""Shared set-up for the report tests: a project copy and executed fixtures.

Not a test module. The whole-chain fixture builds the demo study's report once per
test session in a temporary project copy; the browser and PDF tests share it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "report"
DEMO_MONTHS = ("2026-10", "2026-11")


def copy_project(target: Path, *, stages: dict[str, Path] | None = None) -> Path:
    """Lay out a project at `target`: config, home page, notebooks, report.

    With `stages` (name -> notebook) those replace the real numbered notebooks and
    the fixture monthly report replaces ``reports/monthly.ipynb``.
    """
    (target / "notebooks").mkdir(parents=True, exist_ok=True)
    (target / "reports").mkdir(exist_ok=True)
    for name in ("_quarto.yml", "index.qmd"):
        shutil.copyfile(REPO / name, target / name)
    if stages is None:
        for notebook in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")):
            shutil.copyfile(notebook, target / "notebooks" / notebook.name)
        shutil.copyfile(
            REPO / "reports" / "monthly.ipynb", target / "reports" / "monthly.ipynb"
        )
    else:
        for name, notebook in stages.items():
            shutil.copyfile(notebook, target / "notebooks" / f"{name}.ipynb")
        shutil.copyfile(
            FIXTURES / "monthly.ipynb", target / "reports" / "monthly.ipynb"
        )
    return target


def execute_fixture(name: str, folder: Path, *, month: str = "2026-11"):
    """Execute one fixture notebook with papermill in `folder`; return it."""
    import papermill

    output = folder / f"{name}-executed.ipynb"
    papermill.execute_notebook(
        str(FIXTURES / f"{name}.ipynb"),
        str(output),
        parameters={"study": "demo", "month": month},
        kernel_name="python3",
        cwd=str(folder),
        progress_bar=False,
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
    )
    return nbformat.read(output, as_version=4)


_BUILT: dict = {}


def demo_chain(base: Path) -> dict:
    """Return the demo study's reports for two months, built once per session.

    Parameters
    ----------
    base : Path
        The session's temporary folder (``tmp_path_factory.getbasetemp()``).

    Returns
    -------
    dict
        ``root``, ``seconds`` (per month, first build) and, per month, its
        :class:`ReportOutputs`.
    """
    import time

    from helpers.report import build_report

    if _BUILT:
        return _BUILT
    root = copy_project(base / "demo-project")
    _BUILT.update(root=root, seconds={})
    for month in DEMO_MONTHS:
        started = time.perf_counter()
        _BUILT[month] = build_report("demo", month, root=root, renderer="fallback")
        _BUILT["seconds"][month] = time.perf_counter() - started
    return _BUILT
