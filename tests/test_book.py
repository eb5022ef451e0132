"""The rendered book, as a reader sees it: built with jupyter-book, opened in headless Chromium.

The references this file trusts: the files on disk under _build/html (a link resolves when the
file and the anchor exist), the chapters as the build executed them (jupyter-cache's record: a
cell that printed or plotted must show it on the page), Paul Tol's published "light" palette (https://personal.sron.nl/~pault/#sec:qualitative),
the colour-vision-deficiency matrices of Machado, Oliveira and Fernandes (2009, severity 1.0),
and _config.yml (the repository the launch buttons must point to).

Needs Debian's Chromium (`apt-get install chromium`, /usr/bin/chromium) and the `playwright`
package, which drives that browser; no browser is downloaded. The book is built first
(`jupyter-book build .`): after `make book` that build is a cache hit and takes seconds.
Screenshots of every chapter land in _build/screenshots/.
"""

from __future__ import annotations

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

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "_build"
HTML = BUILD / "html"
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


# ---- building and serving ------------------------------------------------------------------


def build_book() -> None:
    """Build the book into _build (a cache hit when nothing changed since `make book`)."""
    command = [str(Path(sys.executable).parent / "jupyter-book"), "build", ".", "--warningiserror", "--keep-going"]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(command, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, f"`jupyter-book build .` failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"


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
    """A new tab showing `path`; requests that leave localhost (MathJax's CDN) get an empty reply."""
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
        facts = page.evaluate(PAGE_FACTS_JS)
        visit.images, visit.links, visit.cells, visit.token_views = (
            facts["images"], facts["links"], facts["cells"], facts["token_views"])
        name = Path(path).stem
        if name in CHAPTERS:
            page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
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


def test_only_mathjax_is_fetched_from_outside(visits):
    # Everything else (theme, fonts, figures, search index) must come with the built book.
    outside = {url for visit in visits.values() for url in visit.external_requests}
    assert all(urlsplit(url).hostname == "cdn.jsdelivr.net" and "mathjax" in url for url in outside), outside


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


# ---- chapters ------------------------------------------------------------------------------


def executed_outputs(name: str) -> list[list[dict]]:
    """Each code cell's outputs as the build executed them (jupyter-cache's record of the chapter).

    The values that `glue(..., display=False)` records for the text are left out: they are data
    for the page, not outputs to show.
    """
    import nbformat
    from jupyter_cache import get_cache

    notebook = nbformat.read(ROOT / "book" / f"{name}.ipynb", as_version=4)
    cache = get_cache(BUILD / ".jupyter_cache")
    executed = cache.get_cache_bundle(cache.match_cache_notebook(notebook).pk).nb
    return [[output for output in cell.outputs if "scrapbook" not in output.get("metadata", {})]
            for cell in executed.cells if cell.cell_type == "code"]


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
        images = sum("image/png" in output.get("data", {}) for output in outputs)
        assert cell["images"] >= images, f"{where}: {images} figures executed, {cell['images']} on the page"
        for output in outputs:
            if output.output_type == "stream":
                first_line = output.text.strip().splitlines()[0].strip()
                assert first_line in " ".join(cell["text"].split()) or first_line in cell["text"], (
                    f"{where} printed {first_line!r}, which the page does not show")
    assert (SCREENSHOTS / f"{name}.png").stat().st_size > 10_000


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
             for name in ["01_tokenization", "03_transformer"]}
    assert len(cited["01_tokenization"]) >= 2 and len(cited["03_transformer"]) >= 4, cited
    listed = (HTML / "book" / "bibliography.html").read_text(encoding="utf-8")
    for title in ["Attention Is All You Need", "Language Models are Unsupervised Multitask Learners",
                  "Language Models are Few-Shot Learners", "The Llama 3 Herd of Models",
                  "Neural Machine Translation of Rare Words with Subword Units", "tiktoken"]:
        assert title.lower() in listed.lower(), f"the bibliography does not list {title!r}"


def test_chapters_have_launch_buttons_for_the_repository(visits):
    repository = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"].removeprefix("https://github.com/")
    for name in CHAPTERS:
        links = chapter(visits, name).links
        assert f"https://colab.research.google.com/github/{repository}/blob/main/book/{name}.ipynb" in links
        assert any(href.startswith(f"https://mybinder.org/v2/gh/{repository}/main") and name in href for href in links)


# ---- exercises and search ------------------------------------------------------------------


def test_exercise_solutions_are_hidden_until_asked_for(site):
    base, browser = site
    pages = sorted((HTML / "book" / "exercises").glob("*.html"))
    assert [p.stem for p in pages] == ["01_bpe", "02_linear", "03_attention", "04_training_loop"]
    for page_file in pages:
        page = open_page(browser, base, f"book/exercises/{page_file.name}")
        exercises, solutions = page.locator("div.exercise"), page.locator("div.solution")
        assert exercises.count() >= 2 and solutions.count() == exercises.count(), page_file.name
        for i in range(solutions.count()):
            body = solutions.nth(i).locator("section").first
            assert not body.is_visible(), f"{page_file.name}: solution {i + 1} is shown before it is asked for"
            solutions.nth(i).locator("button.toggle-button").click()
            body.wait_for(state="visible", timeout=5000)
            assert "def " in body.inner_text() or "class " in body.inner_text()
        page.close()


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
