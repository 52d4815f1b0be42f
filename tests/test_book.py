"""Checks of the built Jupyter Book (``_build/html``), statically and in headless Chromium.

Run after building the book (``make book``, i.e. ``jupyter-book build . -W -n --keep-going``)::

    pytest tests/test_book.py

Without ``_build/html`` every test here is skipped with that reason; the browser test is also skipped
when no Chromium is installed (Debian: ``apt-get install chromium``). The browser test drives Chromium
through the DevTools protocol (a websocket, via tornado, which Jupyter installs): every lesson page
loads over HTTP with no JavaScript exception, every ``<img>`` decodes (``naturalWidth > 0``), and a
full-page screenshot of each lesson is saved to ``_build/screenshots/``.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# VISIONDL_BOOK_HTML checks a book built elsewhere (default: this checkout's _build/html).
HTML = Path(os.environ.get("VISIONDL_BOOK_HTML") or ROOT / "_build" / "html")
SCREENSHOTS = ROOT / "_build" / "screenshots"
LESSON_SOURCES = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.md"))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (HTML / "index.html").is_file(),
                       reason="the book is not built: run `make book` (jupyter-book build . -W -n --keep-going) first"),
]


def _lesson_pages() -> list[Path]:
    return [HTML / "lessons" / (src.stem + ".html") for src in LESSON_SOURCES]


def _pages() -> list[Path]:
    """Every HTML page of the book (not the theme's static files)."""
    return sorted(p for p in HTML.rglob("*.html") if "_static" not in p.parts and "_sources" not in p.parts)


def _soup(path: Path):
    bs4 = pytest.importorskip("bs4", reason="BeautifulSoup comes with jupyter-book: pip install -e .[book]")
    return bs4.BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


# ------------------------------------------------------------------------------------------------
# Static checks (no browser)
# ------------------------------------------------------------------------------------------------


def test_nine_lessons_are_built_and_in_the_toc():
    assert len(LESSON_SOURCES) == 9, f"expected 9 lessons in lessons/, found {[p.name for p in LESSON_SOURCES]}"
    missing = [p.name for p in _lesson_pages() if not p.is_file()]
    assert not missing, f"lesson pages not built: {missing}"
    toc = (ROOT / "_toc.yml").read_text()
    assert all(f"lessons/{src.stem}" in toc for src in LESSON_SOURCES), "a lesson is missing from _toc.yml"


def test_lessons_were_executed_and_have_no_error_output():
    """Every lesson has code outputs, at least one figure, and no traceback or error output."""
    for page in _lesson_pages():
        soup = _soup(page)
        outputs = soup.select("div.cell_output")
        assert outputs, f"{page.name}: no cell outputs; was the lesson executed?"
        errors = soup.select("div.cell_output .traceback, div.output.traceback, div.output.error")
        assert not errors, f"{page.name}: error output: {errors[0].get_text()[:300]}"
        text = " ".join(o.get_text() for o in outputs)
        hit = text.find("Traceback (most recent call last)")
        assert hit < 0, f"{page.name}: a cell output holds a traceback: ...{text[max(0, hit - 200):hit + 300]}..."
        images = soup.select("div.cell_output img")
        tables = soup.select("div.cell_output table")
        assert images or tables, f"{page.name}: no figure or table in any cell output"
        # A figure that the kernel could not render (e.g. MPLBACKEND=Agg leaking into it) shows as its repr.
        unrendered = re.search(r"<Figure size [^>]*>", text)
        assert not unrendered, f"{page.name}: a figure was not rendered, its output is {unrendered.group(0)!r}"
        for needed in ("Learning objectives", "Try it", "Summary", "Questions"):
            assert needed in soup.get_text(), f"{page.name}: no '{needed}' section"
        assert "exercises/ex" in soup.get_text(), f"{page.name}: no pointer to its exercise"


def _local_target(page: Path, url: str) -> tuple[Path | None, str]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme or parts.netloc or url.startswith(("mailto:", "javascript:", "data:")):
        return None, ""
    if not parts.path:
        return page, parts.fragment
    target = (page.parent / urllib.parse.unquote(parts.path)).resolve()
    if target.is_dir():
        target = target / "index.html"
    return target, parts.fragment


def test_internal_links_and_assets_resolve():
    """Every relative href/src of every page points to an existing file, and every #fragment to an id."""
    ids_cache: dict[Path, set[str]] = {}

    def ids(path: Path) -> set[str]:
        if path not in ids_cache:
            soup = _soup(path)
            ids_cache[path] = {t["id"] for t in soup.find_all(id=True)} | {t["name"] for t in soup.find_all("a", attrs={"name": True})}
        return ids_cache[path]

    broken = []
    pages = _pages()
    assert len(pages) >= 13, f"only {len(pages)} pages built"
    for page in pages:
        soup = _soup(page)
        for tag, attr in (("a", "href"), ("img", "src"), ("link", "href"), ("script", "src")):
            for el in soup.find_all(tag):
                url = el.get(attr)
                if not url:
                    continue
                target, fragment = _local_target(page, url)
                if target is None:
                    continue
                rel = page.relative_to(HTML)
                if not target.exists():
                    broken.append(f"{rel}: <{tag} {attr}={url!r}> -> missing file")
                elif fragment and target.suffix == ".html" and fragment not in ids(target):
                    broken.append(f"{rel}: <{tag} {attr}={url!r}> -> no id {fragment!r}")
    assert not broken, f"{len(broken)} broken internal links:\n" + "\n".join(broken[:40])


def test_reference_numbers_state_their_data_source_or_absence():
    """Lessons that read reference artifacts either show them with the data source or say they are missing."""
    for page in _lesson_pages():
        text = _soup(page).get_text()
        if "reference" in text.lower():
            assert ("Measured on" in text or "not committed yet" in text or "JPEG" in text or "CIFAR-10" in text), page.name


def test_math_is_served_by_the_book_itself():
    """Pages with equations load MathJax from the build (``_static/mathjax``), never from a CDN."""
    assert (HTML / "_static" / "mathjax" / "MathJax.js").is_file(), "MathJax was not copied into the build"
    pages_with_math = 0
    for page in _pages():
        soup = _soup(page)
        sources = [s.get("src", "") for s in soup.find_all("script")]
        remote = [u for u in sources if "mathjax" in u.lower() and urllib.parse.urlsplit(u).scheme]
        assert not remote, f"{page.name} loads MathJax from the network: {remote}"
        if soup.select("span.math, div.math"):
            pages_with_math += 1
            assert any("_static/mathjax/MathJax.js" in u for u in sources), f"{page.name}: equations but no MathJax"
    assert pages_with_math >= 4, f"only {pages_with_math} pages hold equations"


def _repository_url() -> str:
    m = re.search(r"^repository:\s*\n\s+url:\s*\"?([^\"\n]+)", (ROOT / "_config.yml").read_text(), re.M)
    assert m, "_config.yml names no repository url"
    return m.group(1).rstrip("/")


def test_each_lesson_has_its_notebook_and_a_colab_link():
    """Each lesson page links to its .ipynb (written by the build) and to Colab, both from the one repository setting."""
    repo = _repository_url()
    for page in _lesson_pages():
        soup = _soup(page)
        hrefs = [a.get("href", "") for a in soup.find_all("a")]
        notebook = f"../notebooks/{page.stem}.ipynb"
        assert notebook in hrefs, f"{page.name}: no link to its notebook"
        nb = json.loads((page.parent / notebook).resolve().read_text())
        first = "".join(nb["cells"][0]["source"])
        assert "google.colab" in first and repo in first, f"{page.name}: the notebook's first cell does not set up Colab"
        assert "tensorflow" not in first.lower().replace("colab's own tensorflow", ""), \
            f"{page.name}: the Colab cell must not install a TensorFlow of its own"
        owner_repo = urllib.parse.urlsplit(repo).path.strip("/")
        colab = [h for h in hrefs if h.startswith("https://colab.research.google.com/github/")]
        assert colab and owner_repo in colab[0] and colab[0].endswith(f"/notebooks/{page.stem}.ipynb"), \
            f"{page.name}: Colab link {colab}"


# Things a reader must not see in executed output: logs, warnings, raw progress bars.
_NOISE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d|absl::|oneDNN|WARNING:tensorflow|UserWarning|DeprecationWarning|"
                    r"\d+/\d+ (?:━|\[=)|\r", re.M)
# Nor anything about the machine the book was built on, or notes meant for the authors.
_AUTHOR_FACING = re.compile(r"/work/|/tmp/|/home/\w+|/root/|\bTODO\b|\bFIXME\b|\bdeadline\b", re.I)


def test_outputs_are_clean_and_pages_speak_to_readers():
    for page in _lesson_pages() + [HTML / "book" / "intro.html", HTML / "book" / "setup.html"]:
        soup = _soup(page)
        for out in soup.select("div.cell_output"):
            m = _NOISE.search(out.get_text())
            assert not m, f"{page.name}: log line, warning or progress bar in an output: {out.get_text()[:200]!r}"
        main = soup.select_one("main") or soup
        m = _AUTHOR_FACING.search(main.get_text())
        assert not m, f"{page.name}: {m.group(0)!r} in the page: ...{main.get_text()[max(0, m.start() - 80):m.end() + 80]}..."


# ------------------------------------------------------------------------------------------------
# Headless Chromium
# ------------------------------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium page (tests/browser.py, the DevTools-protocol driver the dashboard tests use too)."""
    driver = pytest.importorskip("browser", reason="tests/browser.py drives Chromium")
    pytest.importorskip("tornado", reason="tornado (installed with jupyter-book) drives Chromium's DevTools websocket")
    if driver.find_chromium() is None:
        pytest.skip("no Chromium found: install it (Debian: apt-get install chromium) or set CHROMIUM=/path/to/binary")
    with driver.launch_chromium(width=1280, height=900) as b:
        yield b.page


_PAGE_STATE = """
(async () => {
  await Promise.all(Array.from(document.images).map(img => img.complete ? null :
      new Promise(r => { img.addEventListener('load', r); img.addEventListener('error', r); })));
  // MathJax typesets after the load event; wait until its queue is empty.
  for (let i = 0; i < 100 && document.querySelector('.math') && !(window.MathJax && MathJax.Hub); i++)
    await new Promise(r => setTimeout(r, 100));
  if (window.MathJax && MathJax.Hub) await new Promise(r => MathJax.Hub.Queue(r));
  // Text a reader sees outside code: raw TeX delimiters there mean an equation was not rendered.
  const walker = document.createTreeWalker(document.querySelector('main') || document.body, NodeFilter.SHOW_TEXT);
  let prose = '';
  for (let n = walker.nextNode(); n; n = walker.nextNode())
    if (!n.parentElement.closest('pre, code, script, style, .MathJax_Preview')) prose += n.textContent + ' ';
  const bs = String.fromCharCode(92), rawTex = [bs + '(', bs + '[', '$$'];
  const hit = rawTex.map(d => prose.indexOf(d)).filter(k => k >= 0).sort((a, b) => a - b)[0];
  const rawSample = hit === undefined ? '' : prose.slice(Math.max(0, hit - 60), hit + 60);
  const article = document.querySelector('article') || document.body;
  const figures = Array.from(document.querySelectorAll('div.cell_output img')).map(i => ({
      src: i.getAttribute('src').slice(-60), natural: i.naturalWidth, shown: i.clientWidth,
      sized: i.hasAttribute('width') || !!i.style.width}));
  return {
    math_sources: document.querySelectorAll('span.math, div.math').length,
    math_rendered: document.querySelectorAll('.MathJax, .MathJax_Display, mjx-container').length,
    raw_tex: rawTex.reduce((a, d) => a + prose.split(d).length - 1, 0),
    raw_tex_sample: rawSample,
    article_width: article.clientWidth,
    page_width: document.documentElement.scrollWidth,
    figures: figures,
    title: document.title,
    images: document.images.length,
    broken: Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)
                 .map(i => i.getAttribute('src').slice(0, 120)),
    outputs: document.querySelectorAll('div.cell_output').length,
    errors: document.querySelectorAll('div.cell_output .traceback, div.output.error').length,
    height: Math.ceil(document.documentElement.scrollHeight),
  };
})()
"""


def _visit_all(page, urls, shots_dir: Path) -> dict:
    results = {}
    for name, url in urls:
        page.exceptions.clear()
        page.navigate(url)
        state = page.evaluate(_PAGE_STATE)
        path = page.screenshot(shots_dir / f"{name}.png", max_height=16000)
        state.update(exceptions=list(page.exceptions), screenshot=str(path))
        results[name] = state
    return results


# A figure drawn by plots.py at its smallest font (7 pt at 100 dpi, ~9.7 px) must not be shrunk by more than this
# for its text to stay above ~9 px on screen.
MIN_FIGURE_SCALE = 0.92


def test_lesson_pages_in_headless_chromium(server, browser):
    """Each lesson loads, has outputs and no broken image or JS exception; screenshots are saved."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    urls = [(p.stem, f"{server}/lessons/{p.name}") for p in _lesson_pages()]
    urls += [("intro", f"{server}/book/intro.html"), ("setup", f"{server}/book/setup.html")]
    results = _visit_all(browser, urls, SCREENSHOTS)
    problems = []
    for name, st in results.items():
        if st["broken"]:
            problems.append(f"{name}: broken images {st['broken']}")
        # Known upstream bug, not fixed yet (book/_ext/dedupe_scripts.py does not catch it): sphinx-thebe 0.3.1
        # declares `const THEBE_JS_URL` twice per page under Jupyter Book 1.0.4 / Sphinx 7.4. It only breaks the
        # (unused) live-code button; every other exception fails the test.
        exceptions = [e for e in st["exceptions"] if "THEBE_JS_URL" not in e]
        if exceptions:
            problems.append(f"{name}: JavaScript exceptions {exceptions}")
        if name[:2].isdigit():
            if st["outputs"] == 0:
                problems.append(f"{name}: no cell outputs rendered")
            if st["errors"]:
                problems.append(f"{name}: {st['errors']} error outputs")
            if st["images"] < 1:
                problems.append(f"{name}: no images")
        if st["math_sources"] and not st["math_rendered"]:
            problems.append(f"{name}: {st['math_sources']} equations, none rendered by MathJax")
        if st["raw_tex"]:
            problems.append(f"{name}: raw TeX delimiters in the text: {st['raw_tex_sample']!r}")
        if st["page_width"] > 1280:
            problems.append(f"{name}: the page scrolls sideways ({st['page_width']} px wide at a 1280 px viewport)")
        for fig in st["figures"]:  # figures drawn in the lesson (artifact images are shown at a set width)
            if not fig["sized"] and fig["natural"] and fig["shown"] < MIN_FIGURE_SCALE * fig["natural"]:
                problems.append(f"{name}: figure ...{fig['src']} shown at {fig['shown']} of {fig['natural']} px: "
                                "its text would be too small (plots.py keeps figures within the text column)")
        shot = Path(st["screenshot"])
        if not shot.is_file() or shot.stat().st_size < 10_000:
            problems.append(f"{name}: screenshot missing or blank ({shot})")
    (SCREENSHOTS / "report.json").write_text(json.dumps(results, indent=1))
    assert sum(st["math_rendered"] for st in results.values()) > 0, "no rendered equation in any lesson"
    assert not problems, "\n".join(problems)
