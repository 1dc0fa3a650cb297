"""The offline HTML report: built by the real CLI, read by a parser, and opened in
headless Chromium with every network request blocked.

The browser is driven through the DevTools protocol over a pipe
(``--remote-debugging-pipe``: JSON messages separated by NUL bytes on file descriptors
3 and 4), so the test needs nothing but Debian's ``chromium`` package (``.ci/run``
installs it) -- no websocket client, no playwright. It records console messages,
uncaught exceptions, log entries (CSP violations, failed loads) and every request the
page makes, and takes a screenshot.
"""

from __future__ import annotations

import base64
import html.parser
import io
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from hwbench.records import CaseIdentity, CaseResult, Flag
from hwbench.results import read_record, write_atomic
from conftest import ROOT, hwbench

SMOKE = ROOT / "results" / "examples" / "smoke-cpu-amd-epyc-2cores.json"
EXAMPLE = ROOT / "reports" / "examples" / "smoke-report.html"
EXAMPLE_CMD = ["report", "results/examples/smoke-cpu-amd-epyc-2cores.json", "--html",
               "reports/examples/smoke-report.html"]

HOSTILE_HOST = '<script>alert(1)</script><img src=x onerror="alert(2)">"\'&'
HOSTILE_REASON = '"><img src=x onerror=alert(3)> $\\alpha$ </td></table><script>alert(4)</script>'


# --------------------------------------------------------------------- helpers
class _Doc(html.parser.HTMLParser):
    """Tags, attributes and text of a page, as a browser's parser would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(text: str) -> _Doc:
    d = _Doc()
    d.feed(text)
    return d


def external_refs(doc: _Doc) -> list[str]:
    """Every URL-carrying attribute that points anywhere but into the page or a data: URI."""
    out = []
    for tag, attrs in doc.tags:
        for k in ("src", "href", "xlink:href", "action", "srcset", "poster", "data"):
            v = attrs.get(k)
            if v is not None and not (v.startswith("#") or v.startswith("data:")):
                out.append(f"{tag} {k}={v[:80]}")
    return out


def embedded_csv(text: str) -> pd.DataFrame:
    doc = parse(text)
    href = next(a["href"] for t, a in doc.tags if t == "a" and a.get("id") == "data-csv")
    return pd.read_csv(io.BytesIO(base64.b64decode(href.split("base64,", 1)[1])))


def hostile_results(tmp_path: Path) -> Path:
    """The smoke results with a hostile host name, suite-looking model label and a
    failed and a skipped case whose reasons are hostile, rewritten through the records API."""
    rec = read_record(SMOKE)
    seg = rec.segments[0]
    env = seg.environment.model_copy(update={"hostname": HOSTILE_HOST, "cpu_model": HOSTILE_HOST})
    segs = [seg.model_copy(update={"environment": env}), *rec.segments[1:]]
    first = rec.cases[0]
    bad = [
        CaseResult(case_id="mlp:tiny/infer/bs64/fp32/eager/cpu", status="failed", reason=HOSTILE_REASON,
                   case=CaseIdentity(model="mlp:tiny", mode="infer", batch_size=64, precision="fp32", backend="eager",
                                     device="cpu")),
        CaseResult(case_id="mlp:tiny/infer/bs8/fp8/eager/cpu", status="skipped", reason="fp8 needs <b>CUDA</b> & 8.9",
                   case=CaseIdentity(model="mlp:tiny", mode="infer", batch_size=8, precision="fp8", backend="eager",
                                     device="cpu")),
    ]
    flagged = first.model_copy(update={"flags": [*first.flags, Flag(flag="throttled", detail=HOSTILE_REASON)]})
    suite = rec.suite.model_copy(update={"name": 'smoke"><script>alert(5)</script>'})
    out = rec.model_copy(update={"segments": segs, "cases": [flagged, *rec.cases[1:], *bad], "suite": suite})
    p = tmp_path / "hostile.json"
    write_atomic(p, out)
    return p


# ------------------------------------------------------------------ the browser
def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """Headless Chromium driven over the DevTools pipe, with every host unresolvable and
    a proxy that does not exist, so nothing can leave the machine."""

    def __init__(self, exe: str, profile: Path) -> None:
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()

        def fds():  # the protocol's fixed descriptors: 3 = commands in, 4 = replies out
            import fcntl

            # via descriptors >= 10 first: either end may itself be 3 or 4 (and dup2 onto
            # the same number would keep its close-on-exec flag)
            hi_r, hi_w = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_chrome_r, from_chrome_w))
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        self.proc = subprocess.Popen(
            [exe, "--headless", "--disable-gpu", "--no-sandbox", "--remote-debugging-pipe",
             f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
             "--disable-background-networking", "--disable-component-update", "--disable-default-apps",
             "--hide-scrollbars", "--mute-audio", "about:blank"],
            # close_fds=False: Popen would close descriptors 3 and 4 after preexec_fn; every
            # other descriptor of this process is non-inheritable (PEP 446) and closes at exec
            close_fds=False, preexec_fn=fds, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []

    def _read(self, deadline: float) -> dict:
        import select

        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply from chromium")
            ready, _, _ = select.select([self._r], [], [], left)
            if ready:
                chunk = os.read(self._r, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the pipe")
                self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method: str, session: str | None = None, timeout: float = 60, **params) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            m = self._read(deadline)
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_for(self, method: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        for m in self.events:
            if m.get("method") == method:
                return m
        while True:
            m = self._read(deadline)
            self.events.append(m)
            if m.get("method") == method:
                return m

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        os.close(self._r)


_CHECKS = """(() => {
  const svgs = [...document.querySelectorAll('figure svg')];
  const drawn = svgs.filter(s => { const r = s.getBoundingClientRect();
      return r.width > 50 && r.height > 50 && s.querySelectorAll('path,use,line,rect').length > 5; });
  return JSON.stringify({
    figures: svgs.length, drawn: drawn.length,
    tables: document.querySelectorAll('table').length,
    rows: document.querySelectorAll('tbody tr').length,
    scripts: document.querySelectorAll('script').length,
    imgs: document.querySelectorAll('img').length,
    onattrs: [...document.querySelectorAll('*')].filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).length,
    title: document.title, h1: document.querySelector('h1').textContent,
    width: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight,
    alerted: window.__alerted || 0,
  });
})()"""


def open_in_browser(page: Path, tmp_path: Path, shot: Path) -> dict:
    exe = _chromium()
    if exe is None:
        pytest.skip("no chromium (Debian: apt-get install chromium; .ci/run installs it)")
    b = Browser(exe, tmp_path / "profile")
    try:
        target = b.call("Target.createTarget", url="about:blank")["targetId"]
        s = b.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            b.call(f"{domain}.enable", session=s)
        b.call("Emulation.setDeviceMetricsOverride", session=s, width=1280, height=1000, deviceScaleFactor=1,
               mobile=False)
        # a page that calls alert() would say so here (dialogs never block a headless test)
        b.call("Page.addScriptToEvaluateOnNewDocument", session=s,
               source="window.__alerted = 0; window.alert = () => { window.__alerted++; };")
        b.call("Page.navigate", session=s, url=page.resolve().as_uri())
        b.wait_for("Page.loadEventFired")
        checks = json.loads(b.call("Runtime.evaluate", session=s, expression=_CHECKS, returnByValue=True)
                            ["result"]["value"])
        png = base64.b64decode(b.call("Page.captureScreenshot", session=s, format="png")["data"])
        shot.write_bytes(png)
        # a second, taller shot further down the page, where the per-model figures are
        b.call("Runtime.evaluate", session=s, expression="document.getElementById('models').scrollIntoView()")
        time.sleep(0.2)
        shot.with_name(shot.stem + "-models.png").write_bytes(
            base64.b64decode(b.call("Page.captureScreenshot", session=s, format="png")["data"]))
    finally:
        b.close()
    ev = b.events
    checks["errors"] = (
        [e["params"]["exceptionDetails"].get("text", "") + str(e["params"]["exceptionDetails"].get("exception", ""))
         for e in ev if e.get("method") == "Runtime.exceptionThrown"]
        + [str(e["params"].get("args")) for e in ev
           if e.get("method") == "Runtime.consoleAPICalled" and e["params"].get("type") in ("error", "assert")]
        + [e["params"]["entry"].get("text", "") for e in ev
           if e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") == "error"])
    checks["requests"] = [e["params"]["request"]["url"][:100] for e in ev
                          if e.get("method") == "Network.requestWillBeSent"
                          and not e["params"]["request"]["url"].startswith(("file:", "data:", "about:"))]
    return checks


def screenshot_varies(png: Path) -> float:
    """Standard deviation of the screenshot's grey levels: ~0 for a blank page."""
    from PIL import Image, ImageStat

    with Image.open(png) as im:
        return ImageStat.Stat(im.convert("L")).stddev[0]


# ------------------------------------------------------------------------ tests
@pytest.fixture(scope="module")
def smoke_html(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("html") / "smoke.html"
    r = hwbench("report", SMOKE, "--html", out)
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stderr and "figures" in r.stderr
    return out


@pytest.mark.e2e
def test_page_is_self_contained_with_figures_tables_and_data(smoke_html):
    text = smoke_html.read_text(encoding="utf-8")
    doc = parse(text)
    assert external_refs(doc) == []
    assert not any(t == "script" for t, _ in doc.tags)
    assert "http://" not in text.replace("http://www.w3.org/", "") and "https://" not in text
    assert sum(1 for t, _ in doc.tags if t == "figure") >= 4
    assert sum(1 for t, _ in doc.tags if t == "table") >= 8
    ids = {a.get("id") for _, a in doc.tags}
    for section in ("machines", "headline", "tradeoffs", "size-scaling", "models", "not-ok"):
        assert section in ids
    # every figure has its table beside it
    assert text.count('<div class="pair"><figure>') == text.count("<figure>")
    assert len(text) < 2_000_000
    csv = embedded_csv(text)
    assert len(csv) == 41 and {"case_id", "throughput_samples_per_s", "quality_flags"} <= set(csv.columns)


@pytest.fixture(scope="module")
def hostile_html(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("hostile")
    out = tmp / "hostile.html"
    r = hwbench("report", hostile_results(tmp), "--html", out)
    assert r.returncode == 0, r.stderr
    return out


def test_hostile_strings_are_escaped(hostile_html):
    text = hostile_html.read_text(encoding="utf-8")
    doc = parse(text)
    assert not any(t in ("script", "img") for t, _ in doc.tags)
    assert not any(k.startswith("on") for _, a in doc.tags for k in a)
    assert "<script>alert" not in text and "onerror=" not in text.replace("onerror=&quot;", "").replace(
        "onerror=alert(3)&gt;", "")
    body = "".join(doc.text)
    assert HOSTILE_HOST in body  # shown, as text
    assert HOSTILE_REASON in body
    assert "fp8 needs <b>CUDA</b> & 8.9" in body
    # inside figures, only whitelisted characters of results strings
    for svg in re.findall(r"<svg.*?</svg>", text, flags=re.S):
        assert "alert" not in svg and "$" not in svg
    assert embedded_csv(text)["hostname"].iloc[0] == HOSTILE_HOST


@pytest.mark.browser
def test_headless_chromium_renders_the_smoke_report(smoke_html, tmp_path):
    shot = Path(os.environ.get("HWBENCH_SCREENSHOT_DIR", tmp_path)) / "smoke.png"
    c = open_in_browser(smoke_html, tmp_path, shot)
    assert c["errors"] == [], c["errors"]
    assert c["requests"] == [], c["requests"]
    assert c["drawn"] >= 4 and c["drawn"] == c["figures"], c
    assert c["tables"] >= 8 and c["rows"] > 41
    assert c["scripts"] == 0 and c["alerted"] == 0
    assert c["width"] <= 1280  # no horizontal overflow at a laptop's width
    assert shot.stat().st_size > 20_000 and screenshot_varies(shot) > 10


@pytest.mark.browser
def test_headless_chromium_runs_nothing_from_hostile_results(hostile_html, tmp_path):
    c = open_in_browser(hostile_html, tmp_path, tmp_path / "hostile.png")
    assert c["alerted"] == 0 and c["scripts"] == 0 and c["imgs"] == 0 and c["onattrs"] == 0
    assert c["errors"] == [] and c["requests"] == []
    assert HOSTILE_HOST in c["title"] and HOSTILE_HOST in c["h1"]


def test_example_report_matches_the_committed_results(tmp_path):
    """reports/examples/smoke-report.html is what EXAMPLE_CMD builds from the committed
    results today: same embedded data (not the same bytes) and the same sections."""
    assert EXAMPLE.is_file(), f"regenerate it: hwbench {' '.join(EXAMPLE_CMD)}"
    out = tmp_path / "reports" / "examples" / "smoke-report.html"
    r = hwbench(*EXAMPLE_CMD[:-1], out)
    assert r.returncode == 0, r.stderr
    old, new = EXAMPLE.read_text(encoding="utf-8"), out.read_text(encoding="utf-8")
    hint = f"the example report is stale: run hwbench {' '.join(EXAMPLE_CMD)}"
    pd.testing.assert_frame_equal(embedded_csv(old), embedded_csv(new), obj=hint)
    heads = lambda t: re.findall(r'<h[23] id="([^"]+)"', t)  # noqa: E731
    assert heads(old) == heads(new), hint
    assert old.count("<figure>") == new.count("<figure>"), hint
    assert EXAMPLE.stat().st_size < 1_500_000


@pytest.mark.browser
def test_example_report_renders(tmp_path):
    c = open_in_browser(EXAMPLE, tmp_path, tmp_path / "example.png")
    assert c["errors"] == [] and c["requests"] == [] and c["drawn"] >= 4
