"""Check the built documentation site in a real headless browser (Debian's Chromium).

Usage (after building the site)::

    sphinx-build -W --keep-going -b html docs docs/_build/html
    python docs/check_site.py                       # docs/_build/html, shots in docs/_build/shots

It fails (exit status 1) when

* a page links to a local file that does not exist, or to an ``#anchor`` the target page lacks
  (every ``<a href>``, ``<link href>``, ``<img src>`` and ``<script src>`` of every built page);
* a page, loaded in Chromium, has an image that does not render (``naturalWidth == 0``) or a
  local resource (style sheet, script, font, image) that fails to load; an external one (the
  MathJax CDN, offline) is listed as a note;

and it writes screenshots of the front page, one user-guide page, one API page and one gallery
example. Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``),
so only the standard library is needed. Install the browser with ``apt-get install chromium``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

DOCS = Path(__file__).resolve().parent
# screenshot name -> (page, CSS selector scrolled to the top of the view, or None for the top)
SHOTS = {
    "front-page": ("index.html", None),
    "guide-losses": ("guide/losses.html", None),
    "api-metrics": ("api/metrics.html", '[id="focalcal.metrics.ece"]'),
    "gallery-temperature-scaling": ("auto_examples/plot_temperature_scaling.html", None),
    "gallery-temperature-scaling-figure": (
        "auto_examples/plot_temperature_scaling.html",
        "img.sphx-glr-single-img",
    ),
}
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
]
# Make lazy images load, wait for every image to decode, then list the ones that did not render.
BROKEN_IMAGES_JS = """
(async () => {
  const images = Array.from(document.images);
  images.forEach(img => { img.loading = "eager"; });
  await Promise.all(images.map(img => img.decode().catch(() => null)));
  if (window.MathJax && MathJax.Hub) {  // MathJax 2: wait until the formulas are typeset
    await new Promise(done => MathJax.Hub.Queue(done));
  } else if (window.MathJax && MathJax.startup) {
    await MathJax.startup.promise;
  }
  return images.filter(img => !img.complete || img.naturalWidth === 0)
               .map(img => img.getAttribute("src"));
})()
"""


class _Links(HTMLParser):
    """Collects the local references and the element ids of one page."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for key in ("id", "name"):
            if values.get(key) and (key == "id" or tag == "a"):
                self.ids.add(values[key])
        attr = {"a": "href", "link": "href", "img": "src", "script": "src"}.get(tag)
        if attr and values.get(attr):
            self.refs.append(values[attr])


def _parse(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def broken_links(site: Path) -> list[str]:
    """Every local reference of every page that misses its file or its anchor."""
    parsed = {page: _parse(page) for page in sorted(site.rglob("*.html"))}
    problems = []
    for page, links in parsed.items():
        for ref in links.refs:
            url = urlsplit(ref)
            if url.scheme or url.netloc or ref.startswith(("mailto:", "javascript:")):
                continue
            target = (page.parent / unquote(url.path)).resolve() if url.path else page
            if target.is_dir():
                target = target / "index.html"
            where = f"{page.relative_to(site)}: {ref}"
            if not target.exists():
                problems.append(f"{where} (no file {target})")
            elif url.fragment and target.suffix == ".html":
                ids = parsed[target].ids if target in parsed else _parse(target).ids
                if unquote(url.fragment) not in ids:
                    problems.append(f"{where} (no anchor #{url.fragment} in {target.name})")
    return problems


class Chromium:
    """A headless Chromium driven over the DevTools protocol on a pipe (NUL-separated JSON)."""

    def __init__(self, executable: str) -> None:
        self._profile = tempfile.mkdtemp(prefix="focalcal-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def pipe_to_fds_3_and_4() -> None:
            # Chromium reads commands from its fd 3 and writes replies to its fd 4. Duplicating
            # first keeps either end from being overwritten when it already is fd 3 or 4.
            read_end, write_end = os.dup(to_child_r), os.dup(from_child_w)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self._process = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, f"--user-data-dir={self._profile}", "about:blank"],
            preexec_fn=pipe_to_fds_3_and_4,
            close_fds=False,  # fds 3 and 4 must survive; Python's own fds are close-on-exec
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.send("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        for domain in ("Page", "Network", "Runtime"):
            self.send(f"{domain}.enable", session=True)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            session=True,
            width=1280,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )

    def _read_message(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_child, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe (did it start?)")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read_message()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, event: str) -> None:
        while not any(e.get("method") == event for e in self.events):
            self.events.append(self._read_message())

    def open(self, url: str) -> list[str]:
        """Load ``url``; returns the resources that failed to load and the images that do not render."""
        self.events.clear()
        self.send("Page.navigate", session=True, url=url)
        self.wait_for("Page.loadEventFired")
        broken = self.send(
            "Runtime.evaluate",
            session=True,
            expression=BROKEN_IMAGES_JS,
            awaitPromise=True,
            returnByValue=True,
        )["result"]["value"]
        urls = {
            e["params"]["requestId"]: e["params"]["request"]["url"]
            for e in self.events
            if e.get("method") == "Network.requestWillBeSent"
        }
        problems = [f"image does not render: {src}" for src in broken]
        for event in self.events:
            if event.get("method") == "Network.loadingFailed":
                failed = event["params"]
                url = urls.get(failed["requestId"], "?")
                kind = "local" if url.startswith("file:") else "external"
                problems.append(
                    f"{kind} {failed.get('type')} failed ({failed['errorText']}): {url}"
                )
        return problems

    def screenshot(self, path: Path, selector: str | None = None) -> bool:
        """Write a 1280×900 PNG of the view, scrolled so that ``selector`` (if any) is at the top;
        ``False`` when the page has no element matching ``selector``."""
        # "instant": the theme scrolls smoothly, and a screenshot would catch it half-way
        scroll = (
            f"(t => {{ const top = t ? t.getBoundingClientRect().top + window.scrollY - 8 : 0;"
            f" window.scrollTo({{top, behavior: 'instant'}}); return t !== null; }})"
            f"({f'document.querySelector({json.dumps(selector)})' if selector else 'document.body'})"
        )
        found = self.send("Runtime.evaluate", session=True, expression=scroll, returnByValue=True)
        data = self.send("Page.captureScreenshot", session=True, format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return bool(found["result"]["value"])

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except RuntimeError:
            pass
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
        shutil.rmtree(self._profile, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--site", type=Path, default=DOCS / "_build" / "html")
    parser.add_argument("--shots", type=Path, default=DOCS / "_build" / "shots")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument(
        "--shot",
        action="append",
        default=[],
        metavar="NAME=PAGE[@SELECTOR]",
        help="one more screenshot, e.g. api-losses=api/losses.html@.py.class",
    )
    args = parser.parse_args(argv)
    shots = dict(SHOTS)
    for spec in args.shot:
        name, _, page = spec.partition("=")
        page, _, selector = page.partition("@")
        if not name or not page:
            parser.error(f"--shot: expected NAME=PAGE[@SELECTOR], got {spec!r}")
        shots[name] = (page, selector or None)
    site = args.site.resolve()
    if not (site / "index.html").is_file():
        parser.error(f"--site: no index.html in {site}; build the site first (see the docstring)")
    if not Path(args.chromium).exists():
        parser.error(f"--chromium: {args.chromium} not found; install it: apt-get install chromium")

    problems, external = broken_links(site), []
    pages = sorted(site.rglob("*.html"))
    print(f"links: {len(pages)} pages crawled, {len(problems)} broken")
    args.shots.mkdir(parents=True, exist_ok=True)
    browser = Chromium(args.chromium)
    try:
        for page in pages:
            for found in browser.open(page.as_uri()):
                line = f"{page.relative_to(site)}: {found}"
                # a CDN script cannot load on an offline machine; that is not a broken site
                (external if found.startswith("external") else problems).append(line)
            for name, (shot_page, selector) in shots.items():
                if site / shot_page == page:
                    out = args.shots / f"{name}.png"
                    if not browser.screenshot(out, selector):
                        problems.append(f"{shot_page}: no element {selector} to screenshot")
                    print(f"screenshot: {out}")
        missing = [site / p for p, _ in shots.values() if not (site / p).exists()]
        problems += [f"{p.relative_to(site)}: page to screenshot is missing" for p in missing]
    finally:
        browser.close()
    print(f"browser: {len(pages)} pages loaded in Chromium")
    for line in sorted(set(external)):
        print(f"note (external resource, not checked offline): {line}")
    for problem in problems:
        print(f"BROKEN {problem}")
    print("OK" if not problems else f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
