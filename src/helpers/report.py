"""``heard report``: run the month's notebooks and render the monthly report.

The chain is: write the demo study when it is asked for and missing, check the
study folder, execute the numbered notebooks in order and then
``reports/monthly.ipynb`` with papermill, render the PDF and the site, and scan
what was rendered for personal details. Executed notebooks are kept under
``reports/_output/<study>/<month>/executed/`` and reused while their inputs are
unchanged; the PDF and the site are kept likewise (``render.json``), and the
privacy scan's pass is recorded (``privacy.json``), so a second run with nothing
changed reads no notebook and renders nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from helpers.checks import (
    ensure_checked,
    ensure_private,
    list_scanned_outputs,
    remember_checked,
)
from helpers.errors import HeardInputError
from helpers.files import save_text
from helpers.study import check_month, find_project_root, load_study

log = logging.getLogger(__name__)

REPORT_NOTEBOOK = Path("reports") / "monthly.ipynb"
STAGE_PATTERN = "[0-9][0-9]_*.ipynb"
KERNEL = "python3"
# Rendering code does not change what a notebook computes; editing it must not
# re-execute the chain.
RENDER_ONLY = {"render.py", "report.py", "cli.py"}
# Besides Heard's own code, what the PDF and the site are made with (pandoc comes
# inside pypandoc_binary, the fonts inside matplotlib) and what scans them.
RENDER_PACKAGES = ("pypandoc_binary", "typst", "matplotlib", "pypdf")
# What Quarto renders besides the executed notebooks.
PROJECT_FILES = ("_quarto.yml", "index.qmd", "reports/monthly-header.typ")
# What reads the files the privacy scan looks into.
SCAN_PACKAGES = ("pypdf", "pandas", "pyarrow", "openpyxl")
RENDER_MANIFEST = "render.json"
PRIVACY_RECORD = "privacy.json"


@dataclass(frozen=True)
class ReportOutputs:
    """Where the rendered report went.

    Parameters
    ----------
    pdf : Path
        ``reports/_output/<study>/<month>/monthly-<month>.pdf``.
    site : Path
        ``reports/_output/<study>/<month>/site/index.html``.
    """

    pdf: Path
    site: Path


@dataclass(frozen=True)
class Stage:
    """One notebook of the chain: its name, source and working folder."""

    name: str
    source: Path
    cwd: Path


class ReportStageError(HeardInputError):
    """A notebook of the chain failed; names the notebook, the cell and the error."""

    def _compose(self) -> str:
        # The error text is the whole point here: never shorten it.
        return f"{self.file}: {self.found}\n{self.fix}"


def output_folder(root: Path, study: str, month: str) -> Path:
    """Return ``reports/_output/<study>/<month>`` under `root`."""
    return Path(root) / "reports" / "_output" / study / check_month(month)


def announce(step: int, total: int, text: str, *, month: str) -> None:
    """Tell the person running ``heard report`` which stage of which month runs now.

    The month leads the line (``[2026-10 1/7] checks``): when earlier months are
    built first, two blocks of stages follow each other and only the month tells
    them apart. The line goes to standard error through tqdm, so it shows
    whatever the log level and never breaks a progress bar.
    """
    tell(f"[{month} {step}/{total}] {text}")


def tell(text: str) -> None:
    """Write one line for the person running the report, on standard error."""
    from tqdm.auto import tqdm

    tqdm.write(text, file=sys.stderr)


def list_stages(root: Path) -> list[Stage]:
    """Return the numbered notebooks in order, then the monthly report notebook.

    Raises
    ------
    HeardInputError
        When ``reports/monthly.ipynb`` is missing.
    """
    notebooks = Path(root) / "notebooks"
    stages = [
        Stage(path.stem, path, notebooks)
        for path in sorted(notebooks.glob(STAGE_PATTERN))
    ]
    report = Path(root) / REPORT_NOTEBOOK
    if not report.exists():
        raise HeardInputError(
            report,
            expected="the monthly report notebook",
            found="no file",
            fix="restore reports/monthly.ipynb from git",
        )
    return [*stages, Stage("monthly", report, report.parent)]


def build_report(
    study: str,
    month: str,
    *,
    root: Path | None = None,
    renderer: str = "auto",
    fresh: bool = False,
) -> ReportOutputs:
    """Run the whole chain for one study and month and render the report.

    Parameters
    ----------
    study : str
        The study's name under ``data/raw`` (``demo`` is written when missing).
    month : str
        ``YYYY-MM``.
    root : Path, optional
        The project folder; found from the working directory when omitted.
    renderer : {"auto", "quarto", "fallback"}
        ``auto`` uses Quarto when it is on PATH and the PyPI fallback otherwise.
    fresh : bool
        Re-execute every notebook, scan every file and render again, even when
        nothing changed.

    Returns
    -------
    ReportOutputs
        The PDF and the site's ``index.html``.

    Raises
    ------
    HeardInputError
        When the study folder has errors, or a notebook fails (then a
        :class:`ReportStageError` naming the notebook and the cell), or a
        processed file of the month (the call list aside) or the rendered report
        holds an e-mail address or phone number.
    """
    # Settle the renderer first, so a missing Quarto is said before any work.
    root = Path(root or find_project_root()).resolve()
    check_month(month)
    use_quarto = choose_renderer(renderer)
    stages = list_stages(root)
    total = len(stages) + 2
    # Earlier months use the renderer settled here (so Quarto's absence is said once).
    settled = "quarto" if use_quarto else "fallback"
    for earlier in missing_earlier_months(study, month, root=root):
        tell(f"building {earlier} first: {month} depends on it")
        built = build_report(study, earlier, root=root, renderer=settled, fresh=fresh)
        tell(f"{earlier} PDF: {built.pdf}")

    # Check the study folder (writing the demo study first when it is missing).
    folder = output_folder(root, study, month)
    with project_environment(root):
        ensure_demo_study(study, root)
        checked = not fresh and checks_passed(folder, study, month, root=root)
        passed = " (unchanged, passed before)" if checked else ""
        announce(1, total, f"checks{passed}", month=month)
        if checked:
            remember_checked(load_study(study, root=root), month)
        else:
            check_inputs(study, month, root)

    # Execute each notebook, or reuse last run's when nothing it reads changed.
    executed, upstream = {}, ""
    for step, stage in enumerate(stages, start=2):
        digests = stage_digests(stage, study, month, root=root, upstream=upstream)
        reused = not fresh and is_cached(folder, stage, digests)
        announce(
            step, total, f"{stage.name}{' (unchanged, reused)' if reused else ''}",
            month=month,
        )  # fmt: skip
        if not reused:
            execute_stage(
                stage, study, month, root=root, folder=folder, digests=digests
            )
        executed[stage.name] = folder / "executed" / f"{stage.name}.ipynb"
        upstream = digest(digests)

    # No e-mail or phone in the month's processed files (the call list aside):
    # they feed the pages and are shared more widely than raw data.
    ensure_private_once(study, month, root=root, folder=folder, fresh=fresh)

    # Render, unless these very inputs made the PDF and the site still there.
    commit = git_commit(root)
    digests = render_digests(
        executed, study, month, root=root, quarto=use_quarto, commit=commit,
        upstream=upstream,
    )  # fmt: skip
    outputs = None if fresh else reuse_rendered(folder, digests)
    announce(
        total, total, f"render ({settled}){' (unchanged, reused)' if outputs else ''}",
        month=month,
    )  # fmt: skip
    if outputs is None:
        outputs = render_month(
            executed, study, month, root=root, folder=folder, quarto=use_quarto,
            commit=commit, digests=digests,
        )  # fmt: skip
    record_checks_passed(folder, study, month, root=root)
    return outputs


def missing_earlier_months(study: str, month: str, *, root: Path) -> list[str]:
    """Return the study's months before `month` that have raw exports but no
    processed outputs yet, oldest first.

    A month's call list leaves out customers called or held back in earlier
    months and honours their do-not-call requests, all read from the earlier
    months' processed files; so those months are built first.
    """
    with project_environment(root):
        ensure_demo_study(study, root)
    loaded = load_study(study, root=root)
    return [
        earlier
        for earlier in loaded.months()
        if earlier < month
        and loaded.raw("exports", earlier).is_dir()
        and not loaded.processed(earlier, "summary_segments.json").exists()
    ]


def choose_renderer(renderer: str) -> bool:
    """Return True to render with Quarto; say so in one line when it is missing."""
    if renderer not in ("auto", "quarto", "fallback"):
        raise ValueError(f"renderer must be auto, quarto or fallback, got {renderer!r}")
    has_quarto = shutil.which("quarto") is not None
    if renderer == "quarto" and not has_quarto:
        raise HeardInputError(
            "quarto",
            expected="Quarto on PATH",
            found="no quarto command",
            fix="install Quarto (https://quarto.org) or use --renderer fallback",
        )
    if renderer == "auto" and not has_quarto:
        tell(
            "Quarto is not installed: rendering with the fallback "
            "(papermill, pandoc and Typst from PyPI)."
        )
    return renderer == "quarto" or (renderer == "auto" and has_quarto)


def ensure_demo_study(study: str, root: Path) -> None:
    """Write the demo study into ``data/raw/demo`` when it is asked for and missing."""
    folder = root / "data" / "raw" / "demo"
    if study != "demo" or folder.is_dir():
        return
    from helpers.demo import write_demo_study

    tell(f"writing the demo study into {folder}")
    write_demo_study(folder)
    log.info("wrote the demo study into %s", folder)


def check_inputs(study: str, month: str, root: Path) -> None:
    """Run ``helpers.checks`` on the study; raise listing every error.

    Warnings are logged: they change how a result reads but do not stop the run.
    """
    ensure_checked(load_study(study, root=root), month)


def checks_digest(study: str, month: str, *, root: Path) -> str:
    """Return the digest of what the checks read: raw files, processed month, code."""
    return digest(
        {
            "raw": fingerprint_files(root / "data" / "raw" / study),
            "processed": fingerprint_files(root / "data" / "processed" / study / month),
            "helpers": helpers_fingerprint(),
        }
    )


def checks_passed(folder: Path, study: str, month: str, *, root: Path) -> bool:
    """Return True when the last complete run checked exactly these inputs."""
    record = folder / "checks.json"
    if not record.exists():
        return False
    passed = json.loads(record.read_text(encoding="utf-8")).get("digest")
    return passed == checks_digest(study, month, root=root)


def record_checks_passed(folder: Path, study: str, month: str, *, root: Path) -> None:
    """Remember that the inputs, as they stand after a complete run, passed."""
    payload = {"digest": checks_digest(study, month, root=root)}
    save_text(json.dumps(payload), folder / "checks.json")


def fingerprint_files(folder: Path, *, content: bool = False) -> dict[str, list]:
    """Return relative path -> ``[size, mtime_ns]`` (or ``[sha256]``) under `folder`.

    Size and modification time are enough to notice a changed raw export without
    reading it; `content` hashes the bytes instead (small files).
    """
    if not Path(folder).is_dir():
        return {}
    prints = {}
    for path in sorted(Path(folder).rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        prints[path.relative_to(folder).as_posix()] = fingerprint_file(
            path, content=content
        )
    return prints


def fingerprint_file(path: Path, *, content: bool = False) -> list:
    """Return one file's ``[size, mtime_ns]``, or ``[sha256]`` with `content`."""
    if content:
        return [hashlib.sha256(path.read_bytes()).hexdigest()]
    status = path.stat()
    return [status.st_size, status.st_mtime_ns]


def helpers_fingerprint() -> dict[str, list]:
    """Return the content hashes of the ``helpers`` package's code and defaults."""
    package = Path(__file__).parent
    prints = fingerprint_files(package, content=True)
    return {
        name: value
        for name, value in prints.items()
        if name.endswith((".py", ".yml")) and Path(name).name not in RENDER_ONLY
    }


def digest(value) -> str:
    """Return the SHA-256 of `value` written as canonical JSON."""
    text = json.dumps(value, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def stage_digests(
    stage: Stage, study: str, month: str, *, root: Path, upstream: str
) -> dict[str, str]:
    """Return what one notebook run depends on, one digest per kind of input.

    The run's cache key is the digest of these; keeping them apart lets a re-run
    say which input changed.

    The key hashes the notebook's source, the parameters, the raw study files
    (size and modification time), the ``helpers`` source and the key of the stage
    before it, so a change upstream re-runs everything downstream. The monthly
    report also depends on earlier months' processed files (month over month).
    """
    parts = {
        "notebook": hashlib.sha256(stage.source.read_bytes()).hexdigest(),
        "parameters": {"study": study, "month": month},
        "raw": fingerprint_files(root / "data" / "raw" / study),
        "helpers": helpers_fingerprint(),
        "upstream": upstream,
    }
    if stage.source.parent.name == "reports":
        processed = root / "data" / "processed" / study
        parts["earlier"] = {
            name: value
            for name, value in fingerprint_files(processed).items()
            if name[:7] < month
        }
    return {name: digest(part) for name, part in parts.items()}


def is_cached(folder: Path, stage: Stage, digests: dict[str, str]) -> bool:
    """Return True when last run's executed notebook can stand for this run.

    It can when it was made with the same key and every processed file it wrote
    is still there, unchanged (a deleted ``data/processed`` forces a re-run).
    """
    executed = folder / "executed" / f"{stage.name}.ipynb"
    manifest = read_manifest(executed.with_suffix(".json"), digests, name=stage.name)
    return (
        manifest is not None
        and executed.exists()
        and outputs_unchanged(Path(manifest["processed"]), manifest["outputs"])
    )


def read_manifest(path: Path, digests: dict[str, str], *, name: str) -> dict | None:
    """Return the manifest at `path` when it was written for these `digests`.

    Parameters
    ----------
    path : Path
        A manifest written by :func:`save_manifest`.
    digests : dict
        What the step depends on now, one digest per kind of input.
    name : str
        The step, for the log line that says which input changed.

    Returns
    -------
    dict or None
        The manifest (``key``, ``digests`` and the step's own fields); None when
        it is missing or was made from other inputs.
    """
    if not path.exists():
        return None
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("key") != digest(digests):
        before = manifest.get("digests", {})
        changed = sorted(k for k in digests if before.get(k) != digests[k])
        log.info("%s runs again: changed %s", name, ", ".join(changed))
        return None
    return manifest


def save_manifest(path: Path, digests: dict[str, str], **fields) -> None:
    """Write, atomically, that a step ran on `digests` and what it left behind."""
    manifest = {"key": digest(digests), "digests": digests, **fields}
    save_text(json.dumps(manifest, indent=1), path)


def outputs_unchanged(root: Path, outputs: dict[str, list]) -> bool:
    """Return True when every file in `outputs` (relative to `root`, with
    ``[size, mtime_ns]`` as :func:`fingerprint_files` gives) is still there as
    it was written."""
    for relative, expected in outputs.items():
        path = root / relative
        if not path.exists():
            return False
        status = path.stat()
        if [status.st_size, status.st_mtime_ns] != expected:
            return False
    return True


@contextlib.contextmanager
def project_environment(root: Path) -> Iterator[None]:
    """Point the notebooks' kernels at `root` through ``HEARD_ROOT``."""
    before = os.environ.get("HEARD_ROOT")
    os.environ["HEARD_ROOT"] = str(root)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("HEARD_ROOT", None)
        else:
            os.environ["HEARD_ROOT"] = before


def execute_stage(
    stage: Stage,
    study: str,
    month: str,
    *,
    root: Path,
    folder: Path,
    digests: dict[str, str],
) -> Path:
    """Execute one notebook with papermill and keep it with its cache manifest.

    Parameters
    ----------
    stage : Stage
        The notebook and its working folder.
    study, month : str
        The notebook's parameters.
    root : Path
        The project folder, passed to the kernel as ``HEARD_ROOT``.
    folder : Path
        The month's output folder; the executed notebook goes to ``executed/``.
    digests : dict
        What the run depends on (:func:`stage_digests`), recorded for the cache.

    Returns
    -------
    Path
        The executed notebook.

    Raises
    ------
    ReportStageError
        When a cell fails: names the notebook, the cell and the error.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    # Execute into a scratch file; only a complete run replaces the cached one.
    target = folder / "executed" / f"{stage.name}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_suffix(".running.ipynb")
    processed = root / "data" / "processed" / study / month
    before = fingerprint_files(processed)
    try:
        with project_environment(root):
            papermill.execute_notebook(
                str(stage.source),
                str(scratch),
                parameters={"study": study, "month": month},
                kernel_name=KERNEL,
                cwd=str(stage.cwd),
                progress_bar=sys.stderr.isatty(),
                log_output=False,
                # The kernel's start-up notices are not the reader's business.
                extra_arguments=["--IPKernelApp.log_level=ERROR"],
            )
    except PapermillExecutionError as error:
        raise stage_error(stage, error, scratch) from None

    # Record what the notebook wrote, so a later run can tell it is still there.
    after = fingerprint_files(processed)
    outputs = {
        name: value for name, value in after.items() if before.get(name) != value
    }
    os.replace(scratch, target)
    save_manifest(
        target.with_suffix(".json"), digests, processed=str(processed), outputs=outputs
    )
    log.info("executed %s: %d processed files written", stage.source, len(outputs))
    return target


def stage_error(stage: Stage, error, executed: Path) -> ReportStageError:
    """Return the error that names the failed notebook, cell and exception."""
    lines = (error.source or "").splitlines()
    first_line = next((x for x in lines if x.strip() and not x.startswith("#|")), "")
    return ReportStageError(
        f"{stage.source} (cell {source_cell_number(error.cell_index, executed)}: "
        f"`{first_line.strip()}`)",
        expected="every cell to run",
        found=f"{error.ename}: {error.evalue}",
        fix=f"The full traceback is in {executed}.",
    )


def source_cell_number(executed_index: int, executed: Path) -> int:
    """Return the 1-based cell number in the source notebook.

    Papermill adds an ``injected-parameters`` cell; cells after it move down one.
    """
    import nbformat

    try:
        cells = nbformat.read(executed, as_version=4).cells
    except (OSError, ValueError):
        return executed_index + 1
    injected = [
        i
        for i, c in enumerate(cells)
        if "injected-parameters" in c.metadata.get("tags", [])
    ]
    shift = 1 if injected and injected[0] < executed_index else 0
    return executed_index + 1 - shift


def git_commit(root: Path) -> str:
    """Return the short git commit of `root`, marked ``+changes`` when dirty."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return f"{commit}+changes" if dirty else commit


def render_info(study: str, month: str, *, root: Path, quarto: bool, commit: str):
    """Return what the title page says: study name, month, renderer, date, commit."""
    from helpers.render import RenderInfo
    from helpers.report_data import format_study_name

    # The title names the study as given on the command line when it has no name.
    try:
        name = format_study_name(load_study(study, root=root), fallback=study)
    except HeardInputError:
        name = study
    renderer = (
        "Quarto" if quarto else "Heard fallback renderer (papermill, pandoc, Typst)"
    )
    today = dt.datetime.now(dt.UTC).date().isoformat()
    return RenderInfo(name, month, renderer, today, commit)


def render_digests(
    executed: dict[str, Path],
    study: str,
    month: str,
    *,
    root: Path,
    quarto: bool,
    commit: str,
    upstream: str,
) -> dict[str, str]:
    """Return what the PDF and the site depend on, one digest per kind of input.

    Parameters
    ----------
    executed : dict
        Stage name -> executed notebook; their bytes are hashed.
    study, month : str
        As given to :func:`build_report`.
    root : Path
        The project folder, for :data:`PROJECT_FILES`.
    quarto : bool
        Whether Quarto renders (else the fallback).
    commit : str
        The git commit the title page names.
    upstream : str
        The last notebook's key, which covers every input of the chain and the
        ``helpers`` code outside :data:`RENDER_ONLY`.

    Returns
    -------
    dict
        ``executed``, ``upstream``, ``project`` (the files of
        :data:`PROJECT_FILES`), ``code`` (:func:`render_fingerprint`),
        ``renderer`` (:func:`renderer_versions`) and ``title`` -> digest.

    Notes
    -----
    The date on the title page is left out: a reused report keeps the date it
    was rendered on, which is when its pages were made.
    """
    parts = {
        "executed": {
            name: hashlib.sha256(path.read_bytes()).hexdigest()
            for name, path in executed.items()
        },
        "upstream": upstream,
        "project": {
            name: hashlib.sha256((root / name).read_bytes()).hexdigest()
            for name in PROJECT_FILES
            if (root / name).exists()
        },
        "code": render_fingerprint(),
        "renderer": renderer_versions(quarto=quarto),
        "title": {"study": study, "month": month, "commit": commit},
    }
    return {name: digest(part) for name, part in parts.items()}


def render_fingerprint() -> dict[str, list]:
    """Return the content hashes of Heard's rendering code and templates.

    The rest of the package is in every notebook's key, so in ``upstream``.
    """
    prints = fingerprint_files(Path(__file__).parent, content=True)
    return {
        name: value
        for name, value in prints.items()
        if name in RENDER_ONLY or name.startswith("templates/")
    }


def renderer_versions(*, quarto: bool) -> dict[str, str | None]:
    """Return the installed version of each of :data:`RENDER_PACKAGES`, and
    Quarto's when it renders (None for a package that is not installed)."""
    versions = {name: installed_version(name) for name in RENDER_PACKAGES}
    if quarto:
        versions["quarto"] = subprocess.run(
            ["quarto", "--version"], capture_output=True, text=True, timeout=60
        ).stdout.strip()
    return versions


def installed_version(package: str) -> str | None:
    """Return the installed version of `package`, or None when it is missing."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def reuse_rendered(folder: Path, digests: dict[str, str]) -> ReportOutputs | None:
    """Return the month's PDF and site when these `digests` made them and neither
    was changed or deleted since (else None: render again)."""
    manifest = read_manifest(folder / RENDER_MANIFEST, digests, name="render")
    if manifest is None or not outputs_unchanged(folder, manifest["outputs"]):
        return None
    return ReportOutputs(pdf=folder / manifest["pdf"], site=folder / manifest["site"])


def render_month(
    executed: dict[str, Path],
    study: str,
    month: str,
    *,
    root: Path,
    folder: Path,
    quarto: bool,
    commit: str,
    digests: dict[str, str],
) -> ReportOutputs:
    """Render the PDF and the site, scan them, and record them for reuse.

    Parameters
    ----------
    executed : dict
        Stage name -> executed notebook, in navigation order; ``monthly`` last.
    study, month : str
        As given to :func:`build_report`.
    root, folder : Path
        The project folder and the month's output folder.
    quarto : bool
        Render with Quarto, else with the fallback.
    commit : str
        The git commit the title page names.
    digests : dict
        :func:`render_digests`, written to ``render.json`` once the pages pass
        the privacy scan.

    Returns
    -------
    ReportOutputs

    Raises
    ------
    HeardInputError
        When the rendered pages show an e-mail address or phone number.
    """
    from helpers import render

    # A render that stops half-way must never look like a finished one.
    (folder / RENDER_MANIFEST).unlink(missing_ok=True)
    info = render_info(study, month, root=root, quarto=quarto, commit=commit)
    if quarto:
        outputs = render.render_with_quarto(root, executed, info=info, folder=folder)
    else:
        outputs = render_fallback(root, executed, info=info, folder=folder)

    # Make sure nothing personal reached the pages; only then remember them.
    check_rendered_privacy(outputs)
    record_rendered_private(outputs, study, month, root=root, folder=folder)
    save_manifest(
        folder / RENDER_MANIFEST,
        digests,
        pdf=Path(outputs.pdf).relative_to(folder).as_posix(),
        site=Path(outputs.site).relative_to(folder).as_posix(),
        outputs=fingerprint_rendered(outputs, folder),
    )
    return outputs


def fingerprint_rendered(outputs: ReportOutputs, folder: Path) -> dict[str, list]:
    """Return ``[size, mtime_ns]`` of the PDF and of every file of the site,
    by path relative to the month's `folder` (as :func:`outputs_unchanged` reads)."""
    site = Path(outputs.site).parent
    prints = {
        (site / name).relative_to(folder).as_posix(): value
        for name, value in fingerprint_files(site).items()
    }
    pdf = Path(outputs.pdf)
    prints[pdf.relative_to(folder).as_posix()] = fingerprint_file(pdf)
    return prints


def render_fallback(root: Path, executed: dict[str, Path], *, info, folder: Path):
    """Render the PDF and the site from executed notebooks without Quarto.

    Parameters
    ----------
    root : Path
        The project folder (for ``index.qmd``).
    executed : dict
        Stage name -> executed notebook, in navigation order; ``monthly`` last.
    info : RenderInfo
        For the title page and the footer.
    folder : Path
        The month's output folder.

    Returns
    -------
    ReportOutputs
    """
    import nbformat

    from helpers import render

    # Turn every executed notebook (and the home page) into Markdown pages.
    subtitle = f"{info.study} · {info.month}"
    pages = [home_page(root, subtitle=subtitle)]
    for name, path in executed.items():
        notebook = nbformat.read(path, as_version=4)
        pages.append(render.notebook_to_page(notebook, name=name, subtitle=subtitle))

    # The PDF holds the monthly report; the site holds every page and the PDF.
    pdf = folder / f"monthly-{info.month}.pdf"
    render.render_page_pdf(pages[-1], pdf, info=info)
    site = render.render_site(
        pages, folder / "site", info=info, attachments={"PDF": pdf}
    )
    return ReportOutputs(pdf=pdf, site=site)


def home_page(root: Path, *, subtitle: str):
    """Return the site's home page from ``index.qmd`` (a plain page without code)."""
    from helpers.render import Page, read_qmd

    front, body = (
        read_qmd(root / "index.qmd") if (root / "index.qmd").exists() else ({}, "")
    )
    return Page("index", str(front.get("title", "Heard")), body, {}, subtitle)


def ensure_private_once(
    study: str, month: str, *, root: Path, folder: Path, fresh: bool
) -> None:
    """Run :func:`helpers.checks.ensure_private` unless every file it would scan
    passed the same scan before, byte for byte.

    Parameters
    ----------
    study, month : str
        As given to :func:`build_report`.
    root, folder : Path
        The project folder and the month's output folder (``privacy.json``).
    fresh : bool
        Scan whatever the record says.

    Raises
    ------
    HeardInputError
        As :func:`helpers.checks.ensure_private`: a processed file or a rendered
        page shows an e-mail address or phone number.

    Notes
    -----
    The scan's verdict on a file depends only on its bytes, its suffix and the
    scanning code, so the record keeps ``<suffix>:<sha256>`` of every file that
    passed, under a key of the ``helpers`` code and the versions of
    :data:`SCAN_PACKAGES`.
    """
    loaded = load_study(study, root=root)
    scanned = set(content_hashes(list_scanned_outputs(loaded, month=month, root=root)))
    record, digests = folder / PRIVACY_RECORD, privacy_digests()
    manifest = None if fresh else read_manifest(record, digests, name="scan")
    if manifest is not None and scanned <= set(manifest["passed"]):
        log.info("privacy scan: all %d files passed it before", len(scanned))
        return
    ensure_private(loaded, month=month, root=root)
    save_manifest(record, digests, passed=sorted(scanned))


def record_rendered_private(
    outputs: ReportOutputs, study: str, month: str, *, root: Path, folder: Path
) -> None:
    """Add the pages :func:`check_rendered_privacy` just passed to ``privacy.json``.

    Only files :func:`helpers.checks.ensure_private` looks into stay recorded,
    so the record does not grow with every render.
    """
    record, digests = folder / PRIVACY_RECORD, privacy_digests()
    manifest = read_manifest(record, digests, name="scan") or {}
    passed = set(manifest.get("passed", [])) | set(
        content_hashes(rendered_files(outputs))
    )
    loaded = load_study(study, root=root)
    scanned = content_hashes(list_scanned_outputs(loaded, month=month, root=root))
    save_manifest(record, digests, passed=sorted(passed & set(scanned)))


def privacy_digests() -> dict[str, str]:
    """Return what the privacy scan's verdict depends on besides the files."""
    return {
        "helpers": digest(helpers_fingerprint()),
        "readers": digest({name: installed_version(name) for name in SCAN_PACKAGES}),
    }


def content_hashes(paths: list[Path]) -> list[str]:
    """Return ``<suffix>:<sha256>`` of each file (the scan reads by suffix)."""
    return [
        f"{path.suffix.lower()}:{hashlib.sha256(path.read_bytes()).hexdigest()}"
        for path in paths
    ]


def rendered_files(outputs: ReportOutputs) -> list[Path]:
    """Return the site's HTML pages and the PDF: what the rendered scan reads."""
    return [*sorted(Path(outputs.site).parent.rglob("*.html")), Path(outputs.pdf)]


def check_rendered_privacy(outputs: ReportOutputs) -> None:
    """Raise when the rendered site or PDF shows an e-mail address or phone number.

    Raises
    ------
    HeardInputError
        Naming the file and what was found; the PDF and the site are deleted
        first, so nothing personal is left to share.
    """
    from helpers.privacy import scan_for_pii

    findings = scan_for_pii(rendered_files(outputs))
    if findings:
        # Nothing personal may stay where someone could share it.
        Path(outputs.pdf).unlink(missing_ok=True)
        shutil.rmtree(Path(outputs.site).parent, ignore_errors=True)
        raise HeardInputError(
            findings[0]["file"],
            expected="no e-mail address or phone number in the report",
            found=f"{len(findings)} match(es), e.g. {findings[0]['found']!r}",
            fix="redact the text where it enters (helpers.privacy.redact) and "
            "run the report again; the PDF and the site were deleted",
        )
