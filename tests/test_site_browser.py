"""The HTML site in a real browser: every page loads without console errors,
broken images or broken links.

Drives Debian's Chromium (/usr/bin/chromium) through Playwright; the site is
served from 127.0.0.1 by the standard library's HTTP server in a thread.
"""

from __future__ import annotations

import functools
import http.server
import threading
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest
from report_chain import demo_chain, execute_fixture

from helpers import render

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the test reports failures itself
        pass


@pytest.fixture
def serve():
    """Serve a folder on 127.0.0.1; yield a function folder -> base URL."""
    servers = []

    def start(folder: Path) -> str:
        handler = functools.partial(QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


def visit_site(browser, base: str) -> list[str]:
    """Visit every page linked from the home page; return the problems found."""
    problems, queue, seen, links = [], [urljoin(base, "index.html")], set(), set()
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: errors.append(f"request failed {r.url}"))
    while queue:
        url = queue.pop()
        if url in seen:
            continue
        seen.add(url)
        errors.clear()
        response = page.goto(url, wait_until="load")
        if response is None or response.status != 200:
            problems.append(f"{url}: status {response and response.status}")
            continue
        problems += [f"{url}: console: {text}" for text in errors]
        broken = page.eval_on_selector_all(
            "img", "images => images.filter(i => !i.complete || i.naturalWidth === 0)"
            ".map(i => i.getAttribute('src'))",
        )  # fmt: skip
        problems += [f"{url}: broken image {src}" for src in broken]
        hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
        for href in hrefs:
            target = href.split("#")[0]
            if urlparse(target).netloc != urlparse(base).netloc:
                problems.append(f"{url}: external link {href}")
            elif target.endswith(".html"):
                queue.append(target)
            else:
                links.add(target)
    page.close()
    return problems + [
        problem for link in sorted(links) if (problem := check_link(link))
    ]


def check_link(url: str) -> str | None:
    """Return a problem when a non-page link (the PDF, a figure) does not load."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return (
                None if response.status == 200 else f"{url}: status {response.status}"
            )
    except urllib.error.URLError as error:
        return f"{url}: {error}"


def test_fixture_site_has_no_console_errors_broken_images_or_links(
    browser, serve, tmp_path
):
    notebook = execute_fixture("stage", tmp_path)
    info = render.RenderInfo("Demo store", "2026-11", "fallback", "2026-12-01", "abc")
    pages = [
        render.Page("index", "Home", "See the [stage page](stage.html#data).\n"),
        render.notebook_to_page(notebook, name="stage"),
    ]
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF-1.4\n")
    site = render.render_site(
        pages, tmp_path / "site", info=info, attachments={"PDF": pdf}
    )

    assert visit_site(browser, serve(site.parent)) == []
    html = (site.parent / "stage.html").read_text()
    assert 'alt="Bar chart of connect rate' in html and "<table" in html


def test_a_broken_image_is_reported(browser, serve, tmp_path):
    # The checker itself must catch what it is there to catch.
    (tmp_path / "index.html").write_text(
        '<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head>'
        '<body><img src="missing.png" alt="x"><a href="gone.pdf">pdf</a></body></html>'
    )
    problems = visit_site(browser, serve(tmp_path))
    assert any("broken image missing.png" in p for p in problems)
    assert any("gone.pdf" in p for p in problems)


def test_demo_site_in_chromium(browser, serve, tmp_path_factory):
    built = demo_chain(tmp_path_factory.getbasetemp())
    site = built["2026-11"].site
    assert visit_site(browser, serve(site.parent)) == []
    pages = sorted(p.name for p in site.parent.glob("*.html"))
    assert "index.html" in pages and "monthly.html" in pages
    assert len(pages) >= 3


def test_demo_experiment_tables_fit_the_text_column(browser, serve, tmp_path_factory):
    # The results table once had 12 columns and was cut off in the page's text
    # column; a table that fits has nothing to scroll sideways.
    built = demo_chain(tmp_path_factory.getbasetemp())
    base = serve(built["2026-11"].site.parent)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(urljoin(base, "04_messaging_experiments.html"), wait_until="load")
    widths = page.eval_on_selector_all(
        "table", "tables => tables.map(t => [t.id, t.scrollWidth, t.clientWidth])"
    )
    page.close()
    assert {"tbl-results", "tbl-result-checks"} <= {name for name, _, _ in widths}
    assert [name for name, scroll, client in widths if scroll > client] == []
