"""Turn executed notebooks into the report: a Typst PDF and a static HTML site.

Two renderers give the same content. Quarto, when it is on PATH, renders the
executed notebooks of the month with ``--no-execute``. Otherwise the fallback,
built only from PyPI wheels, converts each executed notebook to Markdown (Markdown
cells as they are, code never shown, outputs kept: Markdown text and pipe tables,
PNG figures with caption, alt text and label from the cell's ``#|`` options), then
pandoc (``pypandoc_binary``) writes Typst and HTML, and the ``typst`` package
compiles the PDF. Nothing refers to the network: the site uses local files only.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import nbformat
import yaml

log = logging.getLogger(__name__)

TOC_MARKER = "<!-- toc -->"
OPTION_PREFIX = "#|"
CROSSREF_PATTERN = re.compile(r"@((fig|tbl)-[A-Za-z0-9_-]+)")
CROSSREF_WORDS = {"fig": "Figure", "tbl": "Table"}
PANDOC_MARKDOWN = "markdown-citations-smart"
SITE_TITLE = "Heard"


@dataclass(frozen=True)
class Page:
    """One page of the report in Markdown, ready for pandoc.

    Parameters
    ----------
    name : str
        File stem of the page (``index``, ``01_segment_export``, ``monthly``).
    title : str
        The page title, from the notebook's front matter.
    markdown : str
        The body; figure paths are relative to the page (``figures/…``).
    figures : dict
        Relative path -> PNG bytes, written next to the rendered page.
    subtitle : str
        Shown under the title.
    """

    name: str
    title: str
    markdown: str
    figures: dict[str, bytes] = field(default_factory=dict, repr=False)
    subtitle: str = ""


@dataclass(frozen=True)
class RenderInfo:
    """What the title page and the site footer say about this rendering."""

    study: str
    month: str
    renderer: str
    date: str
    commit: str


def template_path(name: str) -> Path:
    """Return the path of one of Heard's templates (``report.typ``, …)."""
    return Path(str(resources.files("helpers").joinpath("templates", name)))


def read_cell_options(source: str) -> dict:
    """Return the Quarto cell options (``#| key: value`` lines) at the top of a cell.

    Parameters
    ----------
    source : str
        The code cell's source.

    Returns
    -------
    dict
        Option name -> value, read as YAML; empty when the cell has none or the
        lines are not valid YAML (the cell is then shown with default options).
    """
    lines = []
    for line in source.splitlines():
        if not line.startswith(OPTION_PREFIX):
            break
        lines.append(line[len(OPTION_PREFIX) :].removeprefix(" "))
    if not lines:
        return {}
    try:
        options = yaml.safe_load("\n".join(lines))
    except yaml.YAMLError:
        log.warning("cell options are not valid YAML, ignored: %s", lines[0])
        return {}
    return options if isinstance(options, dict) else {}


def read_front_matter(notebook: nbformat.NotebookNode) -> dict:
    """Return the YAML front matter of a notebook's first raw cell (or ``{}``)."""
    cells = notebook.get("cells", [])
    if not cells or cells[0].get("cell_type") != "raw":
        return {}
    text = cells[0].get("source", "").strip()
    match = re.match(r"^---\s*\n(.*?)\n---\s*$", text, flags=re.S)
    if not match:
        return {}
    front = yaml.safe_load(match.group(1)) or {}
    return front if isinstance(front, dict) else {}


def read_qmd(path: Path) -> tuple[dict, str]:
    """Return ``(front_matter, body)`` of a Quarto Markdown file without code."""
    text = Path(path).read_text(encoding="utf-8")
    match = re.match(r"^---\s*\n(.*?)\n---\s*\n(.*)$", text, flags=re.S)
    if not match:
        return {}, text
    return yaml.safe_load(match.group(1)) or {}, match.group(2)


def is_included(options: dict) -> bool:
    """Return False when the cell's options hide the whole cell."""
    return options.get("include", True) is not False


def escape_caption(text: str) -> str:
    """Return caption text safe inside Markdown brackets."""
    return str(text).replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")


def escape_attribute(text: str) -> str:
    """Return text safe inside a double-quoted pandoc attribute."""
    return str(text).replace("\\", "").replace('"', "'").replace("\n", " ")


def figure_markdown(path: str, options: dict, *, label: str) -> str:
    """Return the pandoc Markdown of one figure with its caption, label and alt."""
    caption = escape_caption(options.get("fig-cap", ""))
    alt = escape_attribute(options.get("fig-alt") or options.get("fig-cap") or label)
    return f'![{caption}]({path}){{#{label} alt="{alt}"}}'


def table_markdown(markdown: str, options: dict) -> str:
    """Return a Markdown table with its caption and label attached (pandoc syntax)."""
    caption = options.get("tbl-cap")
    label = options.get("label", "")
    if not caption or "|" not in markdown:
        return markdown
    anchor = f" {{#{label}}}" if str(label).startswith("tbl-") else ""
    return f"{markdown.rstrip()}\n\n: {caption}{anchor}"


def outputs_to_markdown(cell, options: dict, *, page: str, position: int):
    """Return ``(markdown_blocks, figures)`` for the outputs of one code cell.

    Parameters
    ----------
    cell : NotebookNode
        An executed code cell; its source is never shown.
    options : dict
        The cell's ``#|`` options (``label``, ``fig-cap``, ``fig-alt``,
        ``tbl-cap``, ``output``).
    page : str
        The page's name, used in figure file names.
    position : int
        The cell's index, used when a figure has no label.

    Returns
    -------
    tuple
        A list of Markdown blocks and a dict of relative path -> PNG bytes.

    Notes
    -----
    ``text/markdown`` passes through (tables arrive as pipe tables from
    ``helpers.tables.show_table``); ``image/png`` becomes a figure file. Plain
    text, HTML reprs, streams (log lines, warnings) and errors are dropped:
    notebooks say what they mean in Markdown outputs.
    """
    blocks, figures = [], {}
    if options.get("output") is False:
        return blocks, figures
    label = str(options.get("label") or f"cell-{position}")
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        if output.get("output_type") not in ("display_data", "execute_result"):
            continue
        if "image/png" in data:
            suffix = f"-{len(figures) + 1}" if figures else ""
            figure_label = label if label.startswith("fig-") else f"fig-{label}"
            path = f"figures/{page}-{label}{suffix}.png"
            figures[path] = base64.b64decode(data["image/png"])
            blocks.append(figure_markdown(path, options, label=figure_label + suffix))
        elif "text/markdown" in data:
            blocks.append(table_markdown(str(data["text/markdown"]), options))
    return blocks, figures


def notebook_to_page(notebook, *, name: str, subtitle: str = "") -> Page:
    """Return an executed notebook as one Markdown :class:`Page`.

    Parameters
    ----------
    notebook : NotebookNode
        An executed notebook (papermill's output).
    name : str
        The page's file stem.
    subtitle : str
        Shown under the title (study and month).

    Returns
    -------
    Page
        Title from the front matter; Markdown cells as written; code cells'
        outputs per :func:`outputs_to_markdown`; cells with ``include: false``
        and the front matter dropped.
    """
    blocks, figures = [], {}
    for position, cell in enumerate(notebook.get("cells", [])):
        kind = cell.get("cell_type")
        if kind == "markdown":
            blocks.append(cell.get("source", ""))
        elif kind == "code":
            options = read_cell_options(cell.get("source", ""))
            if not is_included(options):
                continue
            cell_blocks, cell_figures = outputs_to_markdown(
                cell, options, page=name, position=position
            )
            blocks.extend(cell_blocks)
            figures.update(cell_figures)
    title = str(read_front_matter(notebook).get("title") or name)
    markdown = "\n\n".join(block.strip() for block in blocks if block.strip())
    return Page(name, title, markdown + "\n", figures, subtitle)


def number_crossrefs(markdown: str, *, caption_prefix: bool) -> str:
    """Return `markdown` with ``@fig-x``/``@tbl-x`` replaced by "Figure 1"/"Table 2".

    Figures and tables are numbered separately in the order they appear, as Quarto
    and Typst number them. With `caption_prefix` the captions themselves start
    with "Figure 1." (HTML, where nothing else numbers them); Typst adds its own.
    """
    numbers, counters = {}, {"fig": 0, "tbl": 0}
    for match in re.finditer(r"\{#((fig|tbl)-[A-Za-z0-9_-]+)[ }]", markdown):
        counters[match.group(2)] += 1
        numbers.setdefault(match.group(1), counters[match.group(2)])

    def word(label: str) -> str:
        return f"{CROSSREF_WORDS[label[:3]]} {numbers[label]}"

    if caption_prefix:
        markdown = re.sub(
            r"^!\[(.*?)\]\((.*?)\)\{#(fig-[A-Za-z0-9_-]+)",
            lambda m: (
                f"![{word(m.group(3))}. {m.group(1)}]({m.group(2)}){{#{m.group(3)}"
            ),
            markdown,
            flags=re.M,
        )
        markdown = re.sub(
            r"^: (.*) \{#(tbl-[A-Za-z0-9_-]+)\}$",
            lambda m: f": {word(m.group(2))}. {m.group(1)} {{#{m.group(2)}}}",
            markdown,
            flags=re.M,
        )
    return CROSSREF_PATTERN.sub(
        lambda m: word(m.group(1)) if m.group(1) in numbers else m.group(0), markdown
    )


def typst_escape(text: str) -> str:
    """Return plain text safe inside a Typst string literal."""
    return str(text).replace("\\", "\\\\").replace('"', '\\"')


def run_pandoc(markdown: str, *, to: str, arguments: list[str]) -> str:
    """Return pandoc's conversion of Heard's Markdown to `to`."""
    import pypandoc

    return pypandoc.convert_text(
        markdown,
        to,
        format=PANDOC_MARKDOWN,
        extra_args=["--wrap=none", *arguments],
        verify_format=False,
    )


def write_figures(figures: dict[str, bytes], folder: Path) -> None:
    """Write figure files under `folder`, keeping their relative paths."""
    for relative, content in figures.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def place_toc(markdown: str, *, to: str, toc: bool) -> str:
    """Put the PDF's table of contents where ``<!-- toc -->`` stands (or first)."""
    block = "```{=typst}\n#outline(depth: 2, indent: auto)\n#v(0.6em)\n```"
    if to != "typst" or not toc:
        return markdown.replace(TOC_MARKER, "")
    if TOC_MARKER in markdown:
        return markdown.replace(TOC_MARKER, block, 1).replace(TOC_MARKER, "")
    return f"{block}\n\n{markdown}"


def font_folders() -> list[str]:
    """Return the folders of the fonts the PDF uses besides Typst's own.

    DejaVu Sans comes from matplotlib's bundled fonts, so the PDF looks the same on
    every machine, with or without system fonts.
    """
    import matplotlib

    return [str(Path(matplotlib.get_data_path()) / "fonts" / "ttf")]


def page_to_typst(page: Page, *, info: RenderInfo | None, toc: bool) -> str:
    """Return the Typst source of one page, with Heard's template.

    Parameters
    ----------
    page : Page
        The Markdown page.
    info : RenderInfo, optional
        Study, month, renderer, date and commit for the title block and header;
        omitted for small documents such as call guides.
    toc : bool
        Whether to include a table of contents.

    Returns
    -------
    str
        A complete Typst document.
    """
    markdown = place_toc(
        number_crossrefs(page.markdown, caption_prefix=False), to="typst", toc=toc
    )
    metadata = {"title": page.title, "subtitle": page.subtitle}
    variables = {
        "title-plain": typst_escape(page.title),
        "header-left": typst_escape(page.title),
        "header-right": typst_escape(page.subtitle),
    }
    if info is not None:
        metadata |= {
            "study": info.study,
            "month": info.month,
            "renderer": info.renderer,
            "date": info.date,
            "commit": info.commit,
        }
    arguments = ["--standalone", f"--template={template_path('report.typ')}"]
    arguments += [f"--lua-filter={template_path('figure-alt.lua')}"]
    arguments += [
        f"--metadata={key}:{value}" for key, value in metadata.items() if value
    ]
    arguments += [f"--variable={key}:{value}" for key, value in variables.items()]
    return run_pandoc(markdown, to="typst", arguments=arguments)


def compile_typst(source: str, target: Path, *, figures: dict[str, bytes]) -> Path:
    """Compile Typst `source` to the PDF `target`, figures beside it.

    Parameters
    ----------
    source : str
        A complete Typst document whose images are relative paths.
    target : Path
        The PDF to write (atomically: a failed compile leaves no file).
    figures : dict
        Relative path -> PNG bytes the document refers to.

    Returns
    -------
    Path
        `target`.
    """
    import typst

    from helpers.files import write_atomically

    with tempfile.TemporaryDirectory(prefix="heard-typst-") as folder:
        build = Path(folder)
        write_figures(figures, build)
        (build / "report.typ").write_text(source, encoding="utf-8")
        pdf = typst.compile(
            str(build / "report.typ"),
            root=str(build),
            font_paths=font_folders(),
            ignore_system_fonts=True,
        )
    return write_atomically(Path(target), lambda path: path.write_bytes(pdf))


def render_page_pdf(
    page: Page, target: Path, *, info: RenderInfo | None = None, toc: bool = True
) -> Path:
    """Render one :class:`Page` to a PDF through pandoc and Typst; return `target`."""
    source = page_to_typst(page, info=info, toc=toc)
    return compile_typst(source, target, figures=page.figures)


def render_markdown_pdf(markdown: str, target: Path, *, title: str) -> Path:
    """Render a short Markdown document (a call guide, a note) to a PDF.

    Parameters
    ----------
    markdown : str
        Pandoc Markdown: headings, lists, tables, emphasis.
    target : Path
        Where the PDF goes; written atomically.
    title : str
        Shown in the title block and the running header.

    Returns
    -------
    Path
        `target`.

    Notes
    -----
    Uses the report's template without the study's title-page details and without
    a table of contents, so a one-page guide stays one page.
    """
    page = Page(name=Path(target).stem, title=title, markdown=markdown)
    return render_page_pdf(page, target, info=None, toc=False)


def page_to_html(page: Page, *, nav: list[dict], info: RenderInfo) -> str:
    """Return one standalone HTML page of the site.

    Parameters
    ----------
    page : Page
        The Markdown page; its figures are linked as ``figures/…`` files.
    nav : list of dict
        ``href`` and ``label`` of every page, for the navigation bar.
    info : RenderInfo
        Shown in the footer.

    Returns
    -------
    str
        HTML with a table of contents, local CSS and no external resources.
    """
    markdown = place_toc(
        number_crossrefs(page.markdown, caption_prefix=True), to="html", toc=False
    )
    links = [item | {"current": item["href"] == f"{page.name}.html"} for item in nav]
    metadata = {
        "title": page.title,
        "pagetitle": page.title,
        "subtitle": page.subtitle,
        "site-title": SITE_TITLE,
        "nav": links,
        "footer": (
            f"Study {info.study}, {info.month}. Rendered {info.date} by the "
            f"{info.renderer}; git commit {info.commit}."
        ),
    }
    with tempfile.NamedTemporaryFile(
        "w", suffix=".json", prefix="heard-meta-", delete=False, encoding="utf-8"
    ) as handle:
        json.dump(metadata, handle)
    try:
        arguments = [
            "--standalone",
            "--toc",
            "--toc-depth=2",
            "--section-divs",
            f"--template={template_path('page.html')}",
            f"--metadata-file={handle.name}",
        ]
        return run_pandoc(markdown, to="html5", arguments=arguments)
    finally:
        Path(handle.name).unlink(missing_ok=True)


def render_site(
    pages: list[Page],
    folder: Path,
    *,
    info: RenderInfo,
    attachments: dict[str, Path] | None = None,
) -> Path:
    """Write the static site: one HTML page per :class:`Page`, figures and CSS.

    Parameters
    ----------
    pages : list of Page
        In navigation order; the one named ``index`` is the home page.
    folder : Path
        The site folder; replaced as a whole, so stale pages never linger.
    info : RenderInfo
        Study, month and renderer for the footer.
    attachments : dict, optional
        Navigation label -> file (the PDF), copied into the site and linked.

    Returns
    -------
    Path
        ``folder / "index.html"``.
    """
    nav = [{"href": f"{page.name}.html", "label": nav_label(page)} for page in pages]
    nav += [{"href": Path(p).name, "label": k} for k, p in (attachments or {}).items()]
    building = folder.with_name(folder.name + ".part")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    shutil.copyfile(template_path("site.css"), building / "site.css")
    for attachment in (attachments or {}).values():
        shutil.copyfile(attachment, building / Path(attachment).name)
    for page in pages:
        write_figures(page.figures, building)
        html = page_to_html(page, nav=nav, info=info)
        (building / f"{page.name}.html").write_text(html, encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    building.rename(folder)
    log.info("wrote the site: %d pages in %s", len(pages), folder)
    return folder / "index.html"


def nav_label(page: Page) -> str:
    """Return the short navigation label of a page."""
    if page.name == "index":
        return "Home"
    if page.name == "monthly":
        return "Monthly report"
    stem = re.sub(r"^\d+_", "", page.name).replace("_", " ")
    return stem[:1].upper() + stem[1:]


def render_with_quarto(root: Path, executed: dict[str, Path], *, info, folder: Path):
    """Render the month's executed notebooks with Quarto, without executing again.

    Parameters
    ----------
    root : Path
        The project folder (``_quarto.yml``, ``index.qmd``, ``reports/``).
    executed : dict
        Stage name -> executed notebook; ``monthly`` is the report.
    info : RenderInfo
        Study and month, written into the report's title.
    folder : Path
        The month's output folder; Quarto's project copy goes to ``quarto/``.

    Returns
    -------
    ReportOutputs
        ``monthly-<month>.pdf`` copied from Quarto's Typst output, and the site.

    Notes
    -----
    Quarto renders a copy of the project whose notebooks are papermill's executed
    ones, with ``--no-execute``: the cached computations are what gets published,
    and ``freeze`` can never serve one month's results for another.
    """
    from helpers.report import ReportOutputs

    # Lay out the project copy: configuration, home page, executed notebooks.
    project = folder / "quarto"
    shutil.rmtree(project, ignore_errors=True)
    (project / "notebooks").mkdir(parents=True)
    (project / "reports").mkdir()
    shutil.copyfile(root / "_quarto.yml", project / "_quarto.yml")
    shutil.copyfile(root / "index.qmd", project / "index.qmd")
    shutil.copyfile(
        root / "reports" / "monthly-header.typ",
        project / "reports" / "monthly-header.typ",
    )
    for name, path in executed.items():
        where = "reports" if name == "monthly" else "notebooks"
        notebook = nbformat.read(path, as_version=4)
        if name == "monthly":
            notebook = with_title(notebook, suffix=f"{info.study}, {info.month}")
        nbformat.write(notebook, project / where / f"{name}.ipynb")

    # Render without executing; Quarto's own messages go to the terminal.
    site = folder / "site"
    command = [
        "quarto",
        "render",
        str(project),
        "--no-execute",
        "--output-dir",
        str(site),
    ]
    log.info("running %s", " ".join(command))
    subprocess.run(command, check=True, cwd=project)
    pdf = folder / f"monthly-{info.month}.pdf"
    shutil.copyfile(site / "reports" / "monthly.pdf", pdf)
    return ReportOutputs(pdf=pdf, site=site / "index.html")


def with_title(notebook, *, suffix: str):
    """Return a copy of `notebook` whose front-matter title ends with `suffix`."""
    copy = nbformat.from_dict(json.loads(json.dumps(notebook)))
    front = read_front_matter(copy)
    front["title"] = f"{front.get('title', 'Monthly report')}: {suffix}"
    copy.cells[0].source = "---\n" + yaml.safe_dump(front, sort_keys=False) + "---"
    return copy
