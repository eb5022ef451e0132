"""The rendered book, as a reader sees it: built with jupyter-book, opened in headless Chromium.

The references this file trusts: the files on disk under _build/html (a link resolves when the
file and the anchor exist), the chapters as the build executed them (jupyter-cache's record: a
cell that printed or plotted must show it on the page), Paul Tol's published "light" palette (https://personal.sron.nl/~pault/#sec:qualitative),
the colour-vision-deficiency matrices of Machado, Oliveira and Fernandes (2009, severity 1.0),
and _config.yml (the repository the launch buttons must point to).

The house rules it holds the chapters to (the FIGURE and CHAPTER ENDING contracts of the
developers' notes): at a 1280-px window no figure text is under 10 CSS px and no code block or
table is wider than its column; every chapter ends with Summary, Try it, Further reading and
What's next; formulas render with the MathJax that ships inside the book, with no network.

Needs Debian's Chromium (`apt-get install chromium`, /usr/bin/chromium) and the `playwright`
package, which drives that browser; no browser is downloaded. The book is built first
(`jupyter-book build .`): after `make book` that build is a cache hit and takes seconds.
Screenshots of every chapter land in _build/screenshots/.
"""

from __future__ import annotations

import ast
import functools
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from urllib.parse import unquote, urlsplit
from xml.etree import ElementTree

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# Every exercise, as solutions/ holds them: each has a page in book/exercises/.
EXERCISES = sorted(path.name for path in (ROOT / "solutions").iterdir() if path.is_dir())
BUILD = ROOT / "_build"
HTML = BUILD / "html"
# The term edition (`make book-term`): the same book without the exercises' solutions.
TERM_HTML = BUILD / "term" / "_build" / "html"
SCREENSHOTS = BUILD / "screenshots"
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
# The notebooks of the table of contents' "Chapters" part (book/NN_name.ipynb), in order.
CHAPTERS = [Path(entry["file"]).name for part in TOC["parts"] if part["caption"] == "Chapters"
            for entry in part["chapters"]]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# The flags that let Chromium start as root on a machine with no GPU and a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
# Paul Tol's "light" qualitative scheme: black text stays readable on every colour, and the
# colours stay apart for readers with colour-vision deficiencies. The token visualizer's
# documented palette.
TOL_LIGHT = ["#77AADD", "#EE8866", "#EEDD88", "#FFAABB", "#99DDFF", "#44BB99", "#BBCC33", "#AAAA00", "#DDDDDD"]
# Linear-RGB simulation of the three dichromacies (Machado et al. 2009, severity 1.0).
CVD = {
    "normal vision": np.eye(3),
    "protanopia": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]]),
    "deuteranopia": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]]),
    "tritanopia": np.array([[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602], [0.004733, 0.691367, 0.303900]]),
}
# Two patches side by side with a CIELAB distance (CIE76) of 10 or more are clearly different;
# 2.3 is the smallest difference people notice at all.
MIN_NEIGHBOUR_DELTA_E = 10.0
# FIGURE CONTRACT: at a 1280-px window the smallest text of a figure is at least this many CSS px.
MIN_FIGURE_TEXT_PX = 10.0
# CHAPTER ENDING CONTRACT: the last `##` sections of every chapter, in this order.
CHAPTER_ENDING = ["Summary", "Try it", "Further reading", "What's next"]


# ---- building and serving ------------------------------------------------------------------


def build_book(edition: str = "self-study") -> None:
    """Build the book into _build (a cache hit when nothing changed since `make book`).

    The term edition (book/_ext/editions.py) goes to _build/term, as `make book-term` does; it
    reads the chapters from the cache the self-study build filled.
    """
    command = [str(Path(sys.executable).parent / "jupyter-book"), "build", ".", "--warningiserror", "--keep-going"]
    if edition == "term":
        command += ["--path-output", str(BUILD / "term")]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "BOOK_EDITION": edition}
    done = subprocess.run(command, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, (f"`BOOK_EDITION={edition} {' '.join(command[1:])}` failed:\n"
                                  f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep pytest's output readable
        pass


@dataclass
class Visit:
    """What one page looked like in the browser."""

    path: str  # relative to _build/html, e.g. "book/01_tokenization.html"
    console_errors: list[str] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)  # src, alt, naturalWidth, width, colours
    links: list[str] = field(default_factory=list)  # absolute hrefs
    cells: list[dict] = field(default_factory=list)  # per code cell: output text, images, error
    token_views: list[list[dict]] = field(default_factory=list)  # per view: its spans
    external_requests: list[str] = field(default_factory=list)
    math: dict = field(default_factory=dict)  # what MathJax made of the page's formulas
    # Measured with every folded block unfolded (hidden code, solutions), as a reader who opens them sees it:
    figures: list[dict] = field(default_factory=list)  # images of the article: src, rendered width
    overflows: list[dict] = field(default_factory=list)  # code blocks and tables wider than their column
    sections: list[dict] = field(default_factory=list)  # `##` sections: title, citations, code cells
    # An exercise page's tasks and solutions, each solution's button clicked (`reveal_solutions`):
    solutions: dict = field(default_factory=dict)


PAGE_FACTS_JS = """() => {
  const colours = (img) => {  // how many distinct colours a figure has: 1 would be a blank image
    const canvas = document.createElement('canvas');
    canvas.width = Math.min(img.naturalWidth, 200); canvas.height = Math.min(img.naturalHeight, 200);
    if (!canvas.width || !canvas.height) return 0;
    const context = canvas.getContext('2d');
    context.drawImage(img, 0, 0, canvas.width, canvas.height);
    const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
    const seen = new Set();
    for (let i = 0; i < data.length; i += 4) seen.add(data[i] << 16 | data[i + 1] << 8 | data[i + 2]);
    return seen.size;
  };
  const main = document.querySelector('main') || document.body;
  return {
    images: [...main.querySelectorAll('img')].map(img => ({
      src: img.getAttribute('src'), alt: img.getAttribute('alt') || '', naturalWidth: img.naturalWidth,
      width: img.getBoundingClientRect().width, colours: colours(img)})),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    cells: [...main.querySelectorAll('div.cell')].map(cell => {
      const outputs = [...cell.querySelectorAll('.cell_output')];
      return {
        text: outputs.map(o => o.innerText).join('\\n').trim(),
        images: outputs.reduce((n, o) => n + o.querySelectorAll('img').length, 0),
        visible: outputs.some(o => o.getBoundingClientRect().height > 0),
        error: outputs.some(o => o.querySelector('.traceback, .output.error, .stderr')),
      };
    }),
    token_views: [...main.querySelectorAll('.token-view')].map(view =>
      [...view.querySelectorAll('span[title]')].map(span => ({
        text: span.textContent, title: span.title,
        background: getComputedStyle(span).backgroundColor, colour: getComputedStyle(span).color}))),
  };
}"""


# Waits for MathJax's first typesetting (at most 20 s), then reports what it made of the article.
MATH_FACTS_JS = r"""async () => {
  const article = document.querySelector('.bd-article') || document.body;
  const mathjax = window.MathJax && window.MathJax.startup && window.MathJax.startup.promise;
  const started = mathjax ? await Promise.race([
    MathJax.startup.promise.then(() => true), new Promise(done => setTimeout(() => done(false), 20000))]) : false;
  const formulas = [...article.querySelectorAll('.math')];
  const prose = article.cloneNode(true);  // the visible text outside code and typeset formulas
  prose.querySelectorAll('pre, code, script, style, .highlight, mjx-container').forEach(e => e.remove());
  const text = prose.textContent;
  return {
    formulas: formulas.length,
    started,
    typeset: formulas.filter(f => f.querySelector('mjx-container')).length,
    errors: [...article.querySelectorAll('mjx-merror, merror, [data-mjx-error]')].map(
      e => e.getAttribute('data-mjx-error') || e.textContent),
    // TeX that reached the page as text: a delimiter MathJax never saw, or a command it printed
    raw: ['\\(', '\\[', '$$'].filter(d => text.includes(d)).map(d => {
      const i = text.indexOf(d); return text.slice(Math.max(0, i - 30), i + 50).trim(); }),
    printed_commands: started ? [...MathJax.startup.document.math].flatMap(item =>
      [...MathJax.startup.toMML(item.root).matchAll(/<mtext[^>]*>([^<]*\\[^<]*)<\/mtext>/g)].map(m => m[1])) : [],
  };
}"""

# Unfolds every folded block of the article (hidden code cells, solutions), then measures it.
LAYOUT_FACTS_JS = r"""() => {
  const article = document.querySelector('.bd-article') || document.body;
  article.querySelectorAll('details').forEach(d => { d.open = true; });
  article.querySelectorAll('.toggle-hidden').forEach(e => e.classList.remove('toggle-hidden'));
  const firstLongLine = (box) => {  // the first line of a code block wider than the box's room
    const lines = box.textContent.split('\n');
    const style = getComputedStyle(box);
    const room = box.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    const probe = document.createElement('span');
    probe.style.cssText = 'position: absolute; visibility: hidden; white-space: pre';
    box.appendChild(probe);
    const line = lines.find(l => { probe.textContent = l; return probe.getBoundingClientRect().width > room + 1; });
    probe.remove();
    return line === undefined ? lines.reduce((a, b) => (b.length > a.length ? b : a), '') : line;
  };
  const overflows = [];
  for (const pre of article.querySelectorAll('pre')) {
    if (pre.scrollWidth > pre.clientWidth + 1)
      overflows.push({kind: 'code block', width: pre.scrollWidth, room: pre.clientWidth, line: firstLongLine(pre)});
  }
  for (const table of article.querySelectorAll('table')) {
    const wrapper = table.parentElement;
    const width = Math.max(table.scrollWidth, table.getBoundingClientRect().width, wrapper.scrollWidth);
    if (width > wrapper.clientWidth + 1) {
      const row = table.querySelector('tr');
      overflows.push({kind: 'table', width: Math.round(width), room: wrapper.clientWidth,
                      line: row ? [...row.cells].map(c => c.textContent.trim()).join(' | ') : ''});
    }
  }
  return {
    figures: [...article.querySelectorAll('img')].map(img => ({
      src: img.getAttribute('src'), width: img.getBoundingClientRect().width})),
    overflows,
    sections: [...article.querySelectorAll('section')].filter(s => s.querySelector(':scope > h2')).map(s => {
      const heading = s.querySelector(':scope > h2').cloneNode(true);
      heading.querySelectorAll('.headerlink').forEach(a => a.remove());
      return {title: heading.textContent.trim().replace(/\u2019/g, "'"),
              citations: s.querySelectorAll('a[href*="bibliography.html#"]').length,
              code_cells: s.querySelectorAll('div.cell').length};
    }),
  };
}"""


@pytest.fixture(scope="module")
def site():
    """The built book served on localhost, and a headless Chromium to read it with."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install -y chromium)"
                    " or point $CHROMIUM at a Chromium binary")
    from playwright.sync_api import sync_playwright

    build_book()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=HTML))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield f"http://127.0.0.1:{server.server_address[1]}", browser
        browser.close()
    server.shutdown()


def open_page(browser, base: str, path: str, visit: Visit | None = None):
    """A new tab showing `path`; requests that leave localhost get an empty reply (and are noted)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    if visit is not None:
        page.on("console", lambda msg: msg.type == "error" and visit.console_errors.append(msg.text))
        page.on("pageerror", lambda error: visit.console_errors.append(str(error)))

    def offline(route) -> None:
        if visit is not None:
            visit.external_requests.append(route.request.url)
        route.fulfill(status=200, body="", content_type="text/plain")

    page.route(re.compile(r"^(?!http://127\.0\.0\.1:)https?://.*"), offline)
    page.goto(f"{base}/{path}", wait_until="load")
    return page


def reveal_solutions(page) -> dict:
    """On an exercise page: how many tasks (div.exercise) it has and, for each of its solutions in
    turn, whether it was hidden, whether clicking its button showed it (within 5 s) and the text
    it then showed. Recorded for test_exercise_solutions_are_hidden_until_asked_for while `visits`
    has the page open, so that each exercise page is loaded once."""
    from playwright.sync_api import Error as PlaywrightError

    exercises, solutions = page.locator("div.exercise"), page.locator("div.solution")
    found = {"exercises": exercises.count(), "solutions": []}
    for i in range(solutions.count()):
        body = solutions.nth(i).locator("section").first
        solution = {"hidden": not body.is_visible(), "shown": False, "text": "", "error": ""}
        try:
            solutions.nth(i).locator("button.toggle-button").click()
            body.wait_for(state="visible", timeout=5000)
            solution.update(shown=True, text=body.inner_text())
        except PlaywrightError as error:  # the test reports it, and the visit goes on
            solution["error"] = str(error)
        found["solutions"].append(solution)
    return found


@pytest.fixture(scope="module")
def visits(site) -> dict[str, Visit]:
    """Every page of the book, visited once; chapters are also saved as screenshots."""
    base, browser = site
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # index.html only redirects to the landing page (test_the_site_opens_on_the_course_map).
    pages = sorted(p.relative_to(HTML).as_posix() for p in HTML.rglob("*.html")
                   if not p.relative_to(HTML).parts[0].startswith("_") and p != HTML / "index.html")
    found = {}
    for path in pages:
        visit = Visit(path)
        page = open_page(browser, base, path, visit)
        visit.math = page.evaluate(MATH_FACTS_JS)
        facts = page.evaluate(PAGE_FACTS_JS)
        visit.images, visit.links, visit.cells, visit.token_views = (
            facts["images"], facts["links"], facts["cells"], facts["token_views"])
        name = Path(path).stem
        if name in CHAPTERS:
            page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        if Path(path).parent.as_posix() == "book/exercises":  # on the page already loaded, as a reader would
            visit.solutions = reveal_solutions(page)
        layout = page.evaluate(LAYOUT_FACTS_JS)  # last: it unfolds the page
        visit.figures, visit.overflows, visit.sections = layout["figures"], layout["overflows"], layout["sections"]
        page.close()
        found[path] = visit
    return found


def chapter(visits: dict[str, Visit], name: str) -> Visit:
    return visits[f"book/{name}.html"]


# ---- every page ----------------------------------------------------------------------------


def test_every_page_of_the_table_of_contents_was_built(visits):
    files = [TOC["root"]] + [entry["file"] for part in TOC["parts"] for entry in part["chapters"]]
    missing = [f for f in files if f"{f}.html" not in visits]
    assert not missing, f"pages of _toc.yml that were not built: {missing}"
    assert CHAPTERS[:3] == ["01_tokenization", "02_layers", "03_transformer"], CHAPTERS


def test_the_site_opens_on_the_course_map(site):
    base, browser = site
    page = open_page(browser, base, "index.html")
    page.wait_for_url(f"{base}/book/intro.html", timeout=10_000)
    map_links = page.locator("main table a").evaluate_all("links => links.map(a => a.href)")
    for name in CHAPTERS[:3] + ["exercises/01_bpe", "exercises/02_linear", "exercises/03_attention"]:
        assert f"{base}/book/{name}.html" in map_links, f"the course map does not link {name}"
    page.close()


def test_pages_load_without_console_errors(visits):
    errors = {path: visit.console_errors for path, visit in visits.items() if visit.console_errors}
    assert not errors, f"console errors: {json.dumps(errors, indent=1)}"


def test_nothing_is_fetched_from_outside(visits):
    # The book is read offline: theme, fonts, figures, search index and MathJax come with it.
    outside = {path: visit.external_requests for path, visit in visits.items() if visit.external_requests}
    assert not outside, f"pages that fetch from outside the built book: {json.dumps(outside, indent=1)}"


def test_formulas_render_offline(visits):
    """MathJax, served from the book's _static/mathjax, typesets every formula with no network."""
    with_math = {path: visit.math for path, visit in visits.items() if visit.math["formulas"]}
    assert {"book/02_layers.html", "book/exercises/02_linear.html"} <= set(with_math), sorted(with_math)
    problems = []
    for path, math in with_math.items():
        if not math["started"]:
            problems.append(f"{path}: MathJax did not start (is it in _build/html/_static/mathjax?)")
            continue
        if math["typeset"] < math["formulas"]:
            problems.append(f"{path}: {math['formulas'] - math['typeset']} of {math['formulas']} formulas not typeset")
        problems += [f"{path}: MathJax error {error!r}" for error in math["errors"]]
        problems += [f"{path}: raw TeX in the text: {snippet!r}" for snippet in math["raw"]]
        problems += [f"{path}: a formula prints a TeX command as text: {text!r}" for text in math["printed_commands"]]
    assert not problems, "\n".join(problems)


def test_figures_load_and_have_alt_text(visits):
    problems = []
    for path, visit in visits.items():
        for image in visit.images:
            if image["naturalWidth"] == 0:
                problems.append(f"{path}: {image['src']} did not load")
            if not image["alt"].strip():
                problems.append(f"{path}: {image['src']} has no alt text")
    assert not problems, "\n".join(problems)
    figures = sum(1 for name in CHAPTERS for image in chapter(visits, name).images if "_images/" in image["src"])
    assert figures >= 10, f"expected the chapters' plots, found {figures} figures"


@functools.cache
def anchors_of(file: Path) -> frozenset[str]:
    return frozenset(re.findall(r'\s(?:id|name)="([^"]+)"', file.read_text(encoding="utf-8")))


def test_internal_links_resolve(visits, site):
    base, _ = site
    broken = set()
    for path, visit in visits.items():
        for href in visit.links:
            if not href.startswith(base):
                continue
            parts = urlsplit(href)
            target = HTML / unquote(parts.path).lstrip("/")
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.add(f"{path} -> {href} (no such file)")
            elif parts.fragment and unquote(parts.fragment) not in anchors_of(target):
                broken.add(f"{path} -> {href} (no such anchor)")
    assert not broken, "\n".join(sorted(broken))


SVG = "{http://www.w3.org/2000/svg}"
# A font size in an SVG: a style's font-size or font shorthand ("font: 10px 'DejaVu Sans'"), or the attribute.
FONT_SIZE_STYLE = re.compile(r"(?:^|;)\s*font(?:-size)?\s*:[^;]*?(\d+(?:\.\d+)?)(px|pt|em|%)?(?=[\s;/]|$)")
FONT_SIZE_ATTRIBUTE = re.compile(r"^\s*(\d+(?:\.\d+)?)(px|pt|em|%)?\s*$")


def font_size(element: ElementTree.Element, inherited: float) -> float:
    """The font size of an SVG element in user units (an SVG's CSS px are its user units)."""
    match = FONT_SIZE_STYLE.search(element.get("style", "")) or FONT_SIZE_ATTRIBUTE.match(element.get("font-size", ""))
    if not match:
        return inherited
    value, unit = float(match.group(1)), match.group(2) or "px"
    return {"px": value, "pt": value * 4 / 3, "em": value * inherited, "%": value / 100 * inherited}[unit]


# CSS units of an SVG's width attribute, in points.
POINTS = {"pt": 1.0, "px": 0.75, "": 0.75, "in": 72.0, "cm": 72 / 2.54, "mm": 72 / 25.4}


@dataclass
class SvgFigure:
    width: float  # in the SVG's user units (its viewBox)
    points_per_unit: float  # the intrinsic size: how many points a user unit is
    texts: list[tuple[float, str]]  # (font size in user units, text) of every text it draws


def read_svg(svg_file: Path) -> SvgFigure:
    """The texts of an SVG figure and its scale.

    Matplotlib with `svg.fonttype: none` writes <text> and <tspan> elements whose style gives a
    font-size in user units, and measures the figure in points: `width="432pt"` with
    `viewBox="0 0 432 288"`, so that a user unit is a point.
    """
    root = ElementTree.parse(svg_file).getroot()
    size, unit = re.fullmatch(r"\s*([\d.]+)\s*([a-z]*)\s*", root.get("width", "0")).groups()
    if root.get("viewBox"):
        width = float(root.get("viewBox").replace(",", " ").split()[2])
    else:  # no viewBox: a user unit is a CSS px of the intrinsic size
        width = float(size) * POINTS[unit] / POINTS["px"]

    def walk(element: ElementTree.Element, inherited: float):
        size = font_size(element, inherited)
        if element.tag in (f"{SVG}text", f"{SVG}tspan") and (element.text or "").strip():
            yield size, element.text.strip()
        for child in element:
            yield from walk(child, size)

    return SvgFigure(width, float(size) * POINTS[unit] / width, list(walk(root, 16.0)))  # 16 px: CSS's initial size


def test_figure_text_is_at_least_10_css_px(visits):
    """FIGURE CONTRACT: at a 1280-px window, no text of a figure is smaller than 10 CSS px.

    The rendered size of a text is its font size times the figure's scale on the page: the width
    the browser drew the image at over the width of the SVG's coordinates.
    """
    problems, measured = [], 0
    for path, visit in visits.items():
        in_chapter = Path(path).stem in CHAPTERS
        for figure in visit.figures:
            file = (HTML / path).parent / unquote(urlsplit(figure["src"]).path)
            where = f"{path}: {figure['src']}"
            if file.suffix.lower() != ".svg":
                if in_chapter:
                    problems.append(f"{where} is a {file.suffix} image; chapters draw SVG figures whose text the browser"
                                    " can measure (FIGURE CONTRACT: the remove-cell setup cell with"
                                    ' `%config InlineBackend.figure_formats = ["svg"]` and svg.fonttype "none")')
                continue
            svg = read_svg(file)
            if not svg.texts:
                if 'id="text_' in file.read_text(encoding="utf-8"):
                    problems.append(f"{where} draws its text as paths, which cannot be measured"
                                    ' (FIGURE CONTRACT: plt.rcParams["svg.fonttype"] = "none")')
                continue
            if figure["width"] <= 0:
                problems.append(f"{where} is not displayed, even with its fold opened")
                continue
            measured += 1
            size, text = min(svg.texts)
            css_px = size * figure["width"] / svg.width
            if css_px < MIN_FIGURE_TEXT_PX:
                problems.append(
                    f"{where}: {text!r} is {css_px:.1f} CSS px (font size {size * svg.points_per_unit:.1f} pt in a"
                    f" figure {svg.width * svg.points_per_unit / 72:.1f} in wide, drawn {figure['width']:.0f} px wide);"
                    " the FIGURE CONTRACT asks for figures at most 8 in wide with no text under 9 pt")
    assert not problems, f"{len(problems)} figure(s) with text too small to read:\n" + "\n".join(problems)
    assert measured >= 10, f"expected the chapters' SVG figures, measured {measured}"


def test_code_and_tables_fit_the_column(visits):
    """No code block, output or table is wider than the text column at a 1280-px window."""
    problems = [f"{path}: a {box['kind']} {box['width']} px wide in a {box['room']}-px box;"
                f" {'the first line that does not fit' if box['kind'] == 'code block' else 'its first row'}:"
                f" {box['line'][:100]!r}"
                for path, visit in visits.items() for box in visit.overflows]
    assert not problems, (f"{len(problems)} block(s) wider than the column (house rule: code and output lines at most"
                          " 78 characters, tables that fit):\n" + "\n".join(problems))


# ---- chapters ------------------------------------------------------------------------------


def executed_outputs(name: str) -> list[list[dict]]:
    """Each code cell's outputs as the build executed them (jupyter-cache's record of the chapter).

    The values that `glue(..., display=False)` records for the text are left out: they are data
    for the page, not outputs to show; so are the cells tagged `remove-cell` (the FIGURE
    CONTRACT's setup cell), which the page leaves out.
    """
    import nbformat
    from jupyter_cache import get_cache

    notebook = nbformat.read(ROOT / "book" / f"{name}.ipynb", as_version=4)
    cache = get_cache(BUILD / ".jupyter_cache")
    executed = cache.get_cache_bundle(cache.match_cache_notebook(notebook).pk).nb
    return [[output for output in cell.outputs if "scrapbook" not in output.get("metadata", {})]
            for cell in executed.cells
            if cell.cell_type == "code" and "remove-cell" not in cell.metadata.get("tags", [])]


@pytest.mark.parametrize("name", CHAPTERS)
def test_code_cells_show_their_outputs(visits, name):
    expected = executed_outputs(name)
    cells = chapter(visits, name).cells
    assert len(cells) == len(expected), f"{len(expected)} code cells in the notebook, {len(cells)} on the page"
    assert sum(map(bool, expected)) >= len(expected) // 2, "most cells of a chapter should show something"
    for number, (outputs, cell) in enumerate(zip(expected, cells), start=1):
        where = f"code cell {number} of {name}"
        assert not cell["error"], f"{where} shows an error:\n{cell['text'][:500]}"
        if not outputs:
            continue
        assert cell["visible"], f"{where} has outputs but the page shows none"
        images = sum(any(mime in output.get("data", {}) for mime in ("image/png", "image/svg+xml")) for output in outputs)
        assert cell["images"] >= images, f"{where}: {images} figures executed, {cell['images']} on the page"
        for output in outputs:
            if output.output_type == "stream" and output.text.strip():  # a blank line shows nothing to find
                first_line = output.text.strip().splitlines()[0].strip()
                assert first_line in " ".join(cell["text"].split()) or first_line in cell["text"], (
                    f"{where} printed {first_line!r}, which the page does not show")
    assert (SCREENSHOTS / f"{name}.png").stat().st_size > 10_000


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_ends_with_summary_try_it_further_reading_whats_next(visits, name):
    """CHAPTER ENDING CONTRACT: the last `##` sections, in order, and reading that cites the bibliography."""
    titles = [section["title"] for section in chapter(visits, name).sections]
    sections = {section["title"]: section for section in chapter(visits, name).sections}
    assert titles[-len(CHAPTER_ENDING):] == CHAPTER_ENDING, (
        f"{name} ends with the sections {titles[-len(CHAPTER_ENDING):]}; the CHAPTER ENDING CONTRACT asks for"
        f" {CHAPTER_ENDING}, in this order, as its last `##` sections")
    assert sections["Try it"]["code_cells"] >= 3, f"{name}: `## Try it` should have 3-5 prompts, each with a code cell"
    assert sections["Further reading"]["citations"] >= 1, (
        f"{name}: `## Further reading` cites nothing; cite book/references.bib with {{cite:p}}`key`")


# A name in an assert that says it is about time: part of it (split at "_") is one of these.
WALL_TIME_WORDS = {"time", "times", "timing", "timed", "seconds", "secs", "sec", "elapsed", "duration",
                   "wall", "walltime", "clock", "runtime", "perf", "monotonic", "ms", "minutes"}


def test_no_chapter_asserts_on_a_wall_time():
    """How long a cell takes depends on the reader's machine: the book prints timings, never asserts them."""
    import nbformat

    def names(node: ast.AST) -> set[str]:  # the variables, attributes and functions an assert reads
        return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
            n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}

    found = []
    for name in CHAPTERS:
        notebook = nbformat.read(ROOT / "book" / f"{name}.ipynb", as_version=4)
        code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
        for number, source in enumerate(code, start=1):
            # IPython's %magics and !commands are not Python: blank them out, keeping line numbers.
            python = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
            try:
                asserts = [(ast.get_source_segment(python, node), names(node.test))
                           for node in ast.walk(ast.parse(python)) if isinstance(node, ast.Assert)]
            except SyntaxError:  # still IPython syntax: read the assert lines as words
                asserts = [(line.strip(), set(re.findall(r"[A-Za-z_]\w*", line)))
                           for line in python.splitlines() if re.match(r"\s*assert\b", line)]
            for statement, words in asserts:
                if {part for word in words for part in word.lower().split("_")} & WALL_TIME_WORDS:
                    found.append(f"{name}, code cell {number}: {statement}")
    assert not found, "asserts on a wall time (it depends on the machine; print it instead):\n" + "\n".join(found)


def srgb_to_linear(hex_colour: str) -> np.ndarray:
    channels = np.array([int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return np.where(channels <= 0.04045, channels / 12.92, ((channels + 0.055) / 1.055) ** 2.4)


def lab(linear_rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of a linear-RGB colour."""
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ np.clip(linear_rgb, 0, 1)
    t = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def css_to_hex(css: str) -> str:
    red, green, blue = (int(v) for v in re.findall(r"\d+", css)[:3])
    return f"#{red:02X}{green:02X}{blue:02X}"


def test_token_visualizer_colours_are_distinct_and_colour_blind_safe(visits):
    from course_lib.tokenization.visualize import PALETTE

    assert list(PALETTE) == TOL_LIGHT, "the visualizer's palette is no longer Paul Tol's light scheme"
    views = chapter(visits, "01_tokenization").token_views
    assert len(views) >= 3 and all(len(spans) >= 10 for spans in views), [len(v) for v in views]
    for spans in views:
        assert all(span["title"].startswith("id") and span["text"] for span in spans)
        colours = [css_to_hex(span["background"]) for span in spans]
        assert set(colours) <= set(TOL_LIGHT), set(colours) - set(TOL_LIGHT)
        assert all(css_to_hex(span["colour"]) == "#000000" for span in spans)  # black text on light colours
        for (left, a), (right, b) in pairwise(zip(spans, colours)):
            assert a != b, f"neighbouring tokens {left['text']!r} and {right['text']!r} share the colour {a}"
            for vision, matrix in CVD.items():
                delta = np.linalg.norm(lab(matrix @ srgb_to_linear(a)) - lab(matrix @ srgb_to_linear(b)))
                assert delta >= MIN_NEIGHBOUR_DELTA_E, (
                    f"with {vision}, neighbouring tokens {left['text']!r} ({a}) and {right['text']!r} ({b})"
                    f" differ by only {delta:.1f} in CIELAB")


def test_attention_heatmaps_render(visits):
    heatmaps = [image for image in chapter(visits, "03_transformer").images if image["alt"].startswith("Heatmap")]
    assert len(heatmaps) >= 2, "chapter 3 should show the attention weights before and after the causal mask"
    for image in heatmaps:
        assert image["naturalWidth"] > 200 and image["width"] > 200, image
        assert image["colours"] > 20, f"the heatmap {image['src']} looks blank ({image['colours']} colours)"


def test_chapters_cite_the_bibliography(visits):
    cited = {name: [href for href in chapter(visits, name).links if "/book/bibliography.html#" in href]
             for name in ["01_tokenization", "03_transformer", "05_generation"]}
    assert len(cited["01_tokenization"]) >= 2 and len(cited["03_transformer"]) >= 4, cited
    assert len(cited["05_generation"]) >= 4, cited
    listed = (HTML / "book" / "bibliography.html").read_text(encoding="utf-8")
    for title in ["Attention Is All You Need", "Language Models are Unsupervised Multitask Learners",
                  "Language Models are Few-Shot Learners", "The Llama 3 Herd of Models",
                  "Neural Machine Translation of Rare Words with Subword Units", "tiktoken",
                  "The Curious Case of Neural Text Degeneration"]:
        assert title.lower() in listed.lower(), f"the bibliography does not list {title!r}"


def test_chapters_have_launch_buttons_for_the_repository(visits):
    repository = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"].removeprefix("https://github.com/")
    for name in CHAPTERS:
        links = chapter(visits, name).links
        assert f"https://colab.research.google.com/github/{repository}/blob/main/book/{name}.ipynb" in links
        assert any(href.startswith(f"https://mybinder.org/v2/gh/{repository}/main") and name in href for href in links)


# ---- exercises and search ------------------------------------------------------------------


def test_exercise_solutions_are_hidden_until_asked_for(visits):
    pages = sorted((HTML / "book" / "exercises").glob("*.html"))
    assert [p.stem for p in pages] == EXERCISES  # one page per exercise
    for page_file in pages:
        found = visits[f"book/exercises/{page_file.name}"].solutions  # see reveal_solutions
        assert found["exercises"] >= 2 and len(found["solutions"]) == found["exercises"], page_file.name
        for i, solution in enumerate(found["solutions"]):
            assert solution["hidden"], f"{page_file.name}: solution {i + 1} is shown before it is asked for"
            assert solution["shown"], f"{page_file.name}: solution {i + 1} not shown once asked for: {solution['error']}"
            assert "def " in solution["text"] or "class " in solution["text"]


def page_text(soup) -> str:
    """A page's text with its whitespace collapsed (code stays as written: no separator is added)."""
    return " ".join(soup.get_text().split())


def test_term_edition_has_the_exercises_without_their_solutions(site):
    """`make book-term` (BOOK_EDITION=term) builds the same book, executed chapters included, minus the solutions.

    The reference is the self-study build: each solution's most distinctive line (its longest
    line that the rest of the page does not contain) must be on that page and absent from the
    term edition's page.
    """
    from bs4 import BeautifulSoup

    build_book(edition="term")
    pages = sorted(p.relative_to(HTML) for p in (HTML / "book" / "exercises").glob("*.html"))
    assert len(pages) == len(EXERCISES), pages
    for page in pages:
        normal = BeautifulSoup((HTML / page).read_text(encoding="utf-8"), "html.parser")
        term = BeautifulSoup((TERM_HTML / page).read_text(encoding="utf-8"), "html.parser")
        solutions = normal.select("div.solution")
        assert len(solutions) >= 2, f"{page}: the self-study edition should have its solutions"
        assert len(term.select("div.exercise")) == len(normal.select("div.exercise")), f"{page}: tasks missing"
        assert not term.select("div.solution"), f"{page}: the term edition still has a solution block"
        normal_text, term_text = page_text(normal), page_text(term)
        for solution in solutions:
            lines = [" ".join(line.split()) for line in solution.select_one("section").get_text().splitlines()]
            solution.decompose()
            rest = page_text(normal)
            line = max((line for line in lines if line and line not in rest), key=len)
            assert line in normal_text, f"{page}: {line!r} should be on the self-study page"
            assert line not in term_text, f"{page}: the term edition shows the solution line {line!r}"
    for name in CHAPTERS:  # the chapters are the executed ones, outputs and figures included
        normal, term = ((root / "book" / f"{name}.html").read_text(encoding="utf-8") for root in (HTML, TERM_HTML))
        counts = [(html.count('class="cell_output'), html.count("<img")) for html in (normal, term)]
        assert counts[0] == counts[1] and counts[0][0] > 0, f"{name}: (outputs, images) {counts[0]} vs term {counts[1]}"


def test_search_finds_pages(site):
    base, browser = site
    page = open_page(browser, base, "search.html")
    field_ = page.locator("input[name='q']:visible").first
    field_.fill("attention")
    field_.press("Enter")
    page.wait_for_selector("#search-results ul.search li", timeout=15_000)
    hits = page.locator("#search-results ul.search li a").evaluate_all("links => links.map(a => a.href)")
    assert any("03_transformer.html" in href for href in hits), hits
    page.close()
