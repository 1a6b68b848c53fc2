"""A workshop room against one app server, the browsers left out: N students speaking Streamlit's protocol.

    python benchmarks/load_test_protocol.py                       # 10, 20 and 30 students at once
    python benchmarks/load_test_protocol.py --levels 10 30 --browsers 3 --arrival-spread 60
    python benchmarks/load_test_protocol.py --levels 30 --workshop 1       # mmvae workshop: nginx in front

benchmarks/load_test.py simulates each student with a Chromium context on the server's own cores, and
each costs 10-12 CPU-s there against under 1 for the server: it measures the browsers. In a workshop
the browsers run on the students' laptops. Here each student is a small asyncio client (``Student``)
that does what Streamlit's frontend does over the network, so the server does the work a browser
causes, while nothing is rendered:

* HTTP (``Http``), as a browser without a cache but with cookies (a workshop server's nginx keeps a
  browser on one app process by one, and the websocket's handshake sends them too): the page (``/?seed=S``), the scripts, font, style and
  icon that page names, ``/_stcore/health`` and ``/_stcore/host-config``; then, for each kind of
  element the page shows, the frontend's chunk for it (``PlotlyChart.*.js``, 4.7 MB, ...) with the
  chunks it imports, and the ``/media/`` files elements point to (download buttons' data, images,
  the logo); a ``/media/`` file already dropped because its element was redrawn (404) is counted
  apart, not as an error;
* websocket ``/_stcore/stream`` with the ``streamlit`` subprotocol and the page's ``Origin``; the first
  ``rerun_script`` BackMsg carries the query string (``seed=S``), an empty page hash (the default page)
  and the context (time zone, locale, URL) the frontend sends; ``cached_message_hashes`` is empty: the
  client keeps no cache of forward messages, so the server sends every message in full (a
  ``ref_hash`` message would be counted as an error);
* keeps the elements of the page by delta path (a new full run drops the elements it did not redraw,
  as the frontend does on ``script_finished``), and every widget's value (its default, or the value
  the server sets); every ``rerun_script`` sends the values of the widgets on the page, as the
  frontend's widget manager does; a button press is a ``trigger_value`` sent once;
* ``auto_rerun``: a timer per fragment id that sends ``rerun_script`` with that ``fragment_id`` and
  ``is_auto_rerun`` every ``interval`` seconds (a repeated message with the same interval keeps the
  timer); ``stop_auto_rerun``, a new full run and a page change stop the timers (as in the frontend);
* a page change is a ``rerun_script`` with the page's ``page_script_hash`` (from the ``navigation``
  message); the page's elements are dropped first (the frontend clears them).

Each student opens the app with its own ``?seed=``, records the time until the first plotly chart
element and plotly's chunk are both in (from its arrival: a browser cannot draw the chart earlier), presses Play once the page has
finished running, records the queue wait (Play until the progress text says "training" or "done")
and the time until it says "(done)", checks that the sidebar says "trained in this session" and
names its own seed, then opens Latent embeddings and checks the sidebar again. Errors: exception
elements, error alerts, disconnects, deadlines passed. ``--browsers N`` adds N real Chromium students
(load_test.student: it checks what a browser shows) to every level, with their own seeds; their
timings are reported in their own columns.

Prints the table of load_test.py per level, with the CPU-seconds of this script's own clients
(``time.process_time``: they share the server's cores). Bounded: at most 30 protocol students and 5 browsers per
level, ``--deadline`` seconds per student and step, 127.0.0.1 only, one server started and stopped here.
"""
from __future__ import annotations

import argparse
import asyncio
import gzip
import http.cookiejar
import os
import re
import sys
import time
import urllib.error
import urllib.request
from html.parser import HTMLParser
from urllib.parse import urljoin

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from load_test import (cpu_delta, cpu_snapshot, load_avg, pct, rss_split,  # noqa: E402
                       start_server, student as browser_student)
from streamlit.proto.Alert_pb2 import Alert  # noqa: E402
from streamlit.proto.BackMsg_pb2 import BackMsg  # noqa: E402
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: E402
from streamlit.proto.NumberInput_pb2 import NumberInput  # noqa: E402
from streamlit.proto.WidgetStates_pb2 import WidgetState  # noqa: E402
from tests.app_server import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402

MAX_STUDENTS = 30
MAX_BROWSERS = 5
MAIN, SIDEBAR = 0, 1  # the first entry of a delta path: the root container


class _Assets(HTMLParser):
    """The files a page names in <script src> and <link href> (what a browser fetches before running)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.urls.append(a["src"])
        elif tag == "link" and a.get("href") and a.get("rel") in ("modulepreload", "preload", "stylesheet",
                                                                  "shortcut icon", "icon"):
            self.urls.append(a["href"])


# The frontend's component chunk for an element kind when it is not the kind in CamelCase
CHUNKS = {"progress": "ProgressBar", "markdown": "StreamlitMarkdown", "imgs": "ImageList", "heading": "Heading"}
IMPORT = re.compile(r'(?:from|import)\s*"\./([A-Za-z0-9_.-]+\.js)"')


class Http:
    """A browser's HTTP without a cache: the page and the files it names, health and host-config, then
    the JavaScript chunk of each kind of element the page shows (``PlotlyChart.*.js``, ...) with the
    chunks it imports, and the ``/media/`` files elements point to (download buttons' data, images, the
    logo). Each URL once per student."""

    def __init__(self, base: str, timeout: float) -> None:
        self.base, self.timeout = base, timeout
        self.cookies = http.cookiejar.CookieJar()  # a browser's cookies: a workshop server's nginx routes by one
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))
        self.fetched: set[str] = set()
        self.chunks: list[str] = []  # every chunk name the entry script names
        self.bytes = 0

    def get(self, path: str) -> bytes:
        if path in self.fetched:
            return b""
        self.fetched.add(path)
        req = urllib.request.Request(urljoin(self.base + "/", path), headers={"Accept-Encoding": "gzip"})
        with self.opener.open(req, timeout=self.timeout) as r:
            body = r.read()
            gz = r.headers.get("Content-Encoding") == "gzip"
        self.bytes += len(body)  # as sent
        return gzip.decompress(body) if gz else body

    def cookie_header(self, url: str) -> dict:
        """The Cookie header a browser sends with a request to ``url`` (the websocket's handshake too)."""
        req = urllib.request.Request(url)
        self.cookies.add_cookie_header(req)
        return {"Cookie": req.get_header("Cookie")} if req.has_header("Cookie") else {}

    def page(self, query: str) -> None:
        parser = _Assets()
        parser.feed(self.get(f"/?{query}").decode("utf-8", "replace"))
        for u in parser.urls + ["./_stcore/health", "./_stcore/host-config"]:
            body = self.get(u)
            if u.endswith(".js"):  # the chunks the entry script (and its preloaded modules) can load
                self.chunks += re.findall(r'"\./([A-Za-z0-9_.-]+\.js)"', body.decode("utf-8", "replace"))
        self.chunks = sorted(set(self.chunks))

    def module(self, name: str) -> None:
        """One chunk and, recursively, the chunks it imports (a module's static imports)."""
        todo = [name]
        while todo:
            n = todo.pop()
            if f"./static/js/{n}" in self.fetched:
                continue
            body = self.get(f"./static/js/{n}").decode("utf-8", "replace")
            todo += [m for m in IMPORT.findall(body) if f"./static/js/{m}" not in self.fetched]

    def element(self, kind: str) -> None:
        camel = CHUNKS.get(kind, "".join(w.capitalize() for w in kind.split("_")))
        for n in self.chunks:
            if n.startswith(camel + "."):
                self.module(n)


def widget_value(kind: str, w) -> WidgetState | None:
    """The state the frontend registers for a widget it has just drawn: the value the server set,
    else the default (None for buttons: they send only a trigger when pressed)."""
    s = WidgetState(id=w.id)
    if kind == "checkbox":
        s.bool_value = w.value if w.set_value else w.default
    elif kind == "number_input":
        v = w.value if w.set_value else w.default
        if w.data_type == NumberInput.INT:
            s.int_value = int(v)
        else:
            s.double_value = v
    elif kind in ("selectbox", "radio"):
        if w.set_value:
            s.string_value = w.raw_value
        elif w.HasField("default") and 0 <= w.default < len(w.options):
            s.string_value = w.options[w.default]
        else:
            return None
    elif kind == "multiselect":
        s.string_array_value.data.extend(w.raw_values if w.set_value else [w.options[i] for i in w.default])
    elif kind == "button_group":
        s.string_array_value.data.extend(w.raw_values if w.set_value else
                                         [w.options[i].content for i in w.default])
    elif kind == "slider":
        if w.options:  # select_slider
            s.string_array_value.data.extend(w.raw_value if w.set_value else [w.options[int(i)] for i in w.default])
        else:
            s.double_array_value.data.extend(w.value if w.set_value else w.default)
    elif kind in ("text_input", "text_area", "color_picker"):
        s.string_value = w.value if w.set_value else w.default
    else:
        return None
    return s


WIDGETS = {"checkbox", "number_input", "selectbox", "radio", "multiselect", "button_group", "slider", "text_input",
           "text_area", "color_picker", "button", "download_button"}


def element_text(el) -> str:
    kind = el.WhichOneof("type")
    if kind in ("markdown", "heading", "alert"):
        return getattr(el, kind).body
    if kind == "progress":
        return el.progress.text
    if kind == "metric":
        return f"{el.metric.label} {el.metric.body}"
    return ""


class Student:
    """One student's client: a websocket to the server and the page as the frontend would hold it."""

    def __init__(self, base: str, seed: int, deadline_s: float) -> None:
        self.base, self.seed, self.deadline = base, seed, deadline_s
        self.query = f"seed={seed}"
        self.elements: dict[tuple, tuple] = {}  # delta path -> (Element or None for a block, run counter)
        self.values: dict[str, WidgetState] = {}  # widget id -> current state
        self.pages: dict[str, str] = {}  # page name -> page_script_hash
        self.page_hash = ""
        self.run = 0  # counts full (not fragment) runs
        self.running = False
        self.timers: dict[str, tuple[float, asyncio.Task]] = {}
        self.errors: list[str] = []
        self.seen_errors: set = set()
        self.changed = asyncio.Condition()
        self.ws = None
        self.closing = False
        self.first_chart: float | None = None
        self.http = Http(base, deadline_s)
        self.kinds: dict[str, asyncio.Task] = {}  # element kind -> the fetch of its chunks
        self.fetches: list[asyncio.Task] = []
        self.stale_media = 0  # /media/ files gone (404) by the time they were fetched

    # ---- sending, as the frontend's sendRerunBackMsg ----
    async def rerun(self, fragment_id: str = "", auto: bool = False, trigger: str | None = None) -> None:
        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string = self.query
        cs.page_script_hash = self.page_hash
        cs.fragment_id = fragment_id
        cs.is_auto_rerun = auto
        ci = cs.context_info
        ci.timezone, ci.timezone_offset, ci.locale = "UTC", 0, "en-US"
        ci.url, ci.is_embedded, ci.color_scheme = f"{self.base}/?{self.query}", False, "light"
        active = {getattr(el, el.WhichOneof("type")).id for el, _ in self.elements.values()
                  if el is not None and el.WhichOneof("type") in WIDGETS}
        for wid, state in self.values.items():
            if wid in active:
                cs.widget_states.widgets.append(state)
        if trigger is not None:
            cs.widget_states.widgets.append(WidgetState(id=trigger, trigger_value=True))
        await self.ws.send(msg.SerializeToString())

    def _stop_timers(self, ids=None) -> None:
        for fid in list(self.timers) if ids is None else ids:
            if fid in self.timers:
                self.timers.pop(fid)[1].cancel()

    async def _auto(self, fid: str, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.rerun(fragment_id=fid, auto=True)

    # ---- receiving ----
    def _error(self, what: str) -> None:
        if what not in self.seen_errors:
            self.seen_errors.add(what)
            self.errors.append(what)

    def _fetch(self, what: str, fn, *args) -> asyncio.Task:
        async def go() -> None:
            try:
                await asyncio.to_thread(fn, *args)
            except urllib.error.HTTPError as e:
                if e.code == 404 and what.startswith("/media/"):
                    # the element was redrawn and Streamlit dropped its old file before this fetch: a
                    # browser shows no error for it either (a download button's data is fetched again)
                    self.stale_media += 1
                else:
                    self._error(f"HTTP {what}: {e}")
            except Exception as e:  # noqa: BLE001
                self._error(f"HTTP {what}: {type(e).__name__}: {e}")
        task = asyncio.create_task(go())
        self.fetches.append(task)
        return task

    async def _chart_drawn(self, chunk: asyncio.Task, t0: float) -> None:
        """A browser draws the first chart once the element and plotly's chunk are both in."""
        await chunk
        self.first_chart = time.monotonic() - t0
        async with self.changed:
            self.changed.notify_all()

    def _handle(self, fm: ForwardMsg, t0: float) -> None:
        kind = fm.WhichOneof("type")
        if kind == "logo" and fm.logo.image.startswith("/media/"):
            self._fetch(fm.logo.image, self.http.get, fm.logo.image)
        if kind == "new_session":
            if not fm.metadata.run.fragment_ids:  # a full run: the frontend stops its auto-rerun timers
                self._stop_timers()
                self.run += 1
            if fm.new_session.app_pages:
                self.pages = {p.page_name: p.page_script_hash for p in fm.new_session.app_pages}
            self.page_hash = fm.new_session.page_script_hash or self.page_hash
        elif kind == "navigation":
            self.pages = {p.page_name: p.page_script_hash for p in fm.navigation.app_pages}
            self.page_hash = fm.navigation.page_script_hash or self.page_hash
        elif kind == "page_info_changed":
            self.query = fm.page_info_changed.query_string
        elif kind == "session_status_changed":
            self.running = fm.session_status_changed.script_is_running
        elif kind == "script_finished":
            if fm.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:  # drop what the full run did not redraw
                self.elements = {p: e for p, e in self.elements.items() if e[1] == self.run}
            self.running = False
        elif kind == "auto_rerun":
            fid, interval = fm.auto_rerun.fragment_id, fm.auto_rerun.interval
            if fid and (fid not in self.timers or self.timers[fid][0] != interval):
                self._stop_timers([fid])
                self.timers[fid] = (interval, asyncio.create_task(self._auto(fid, interval)))
        elif kind == "stop_auto_rerun":
            self._stop_timers(list(fm.stop_auto_rerun.fragment_ids))
        elif kind == "ref_hash":
            self._error("ref_hash message (the client has no cache)")
        elif kind == "delta":
            path = tuple(fm.metadata.delta_path)
            d = fm.delta
            if d.HasField("add_block"):
                self.elements[path] = (None, self.run)
            elif d.HasField("new_element"):
                el = d.new_element
                self.elements[path] = (el, self.run)
                t = el.WhichOneof("type")
                if t not in self.kinds:
                    self.kinds[t] = self._fetch(f"chunk of {t}", self.http.element, t)
                    if t == "plotly_chart":
                        self.fetches.append(asyncio.create_task(self._chart_drawn(self.kinds[t], t0)))
                urls = ([el.download_button.url] if t == "download_button" else
                        [i.url for i in el.imgs.imgs] if t == "imgs" else [])
                for u in urls:
                    if u.startswith("/media/") and u not in self.http.fetched:
                        self._fetch(u, self.http.get, u)
                if t == "exception":
                    self._error(f"exception: {el.exception.type}: {el.exception.message[:150]}")
                elif t == "alert" and el.alert.format == Alert.ERROR:
                    self._error(f"error alert: {el.alert.body[:150]}")
                elif t in WIDGETS:
                    w = getattr(el, t)
                    if w.id not in self.values or getattr(w, "set_value", False):
                        s = widget_value(t, w)
                        if s is not None:
                            self.values[w.id] = s

    async def _reader(self, t0: float) -> None:
        try:
            async for data in self.ws:
                fm = ForwardMsg()
                fm.ParseFromString(data)
                self._handle(fm, t0)
                async with self.changed:
                    self.changed.notify_all()
        except Exception as e:  # noqa: BLE001
            if not self.closing:
                self._error(f"disconnected: {type(e).__name__}")
        if not self.closing:
            self._error("disconnected")
        async with self.changed:
            self.changed.notify_all()

    async def until(self, what: str, pred) -> None:
        """Wait until pred() holds (checked after every message), at most the deadline."""
        async def wait() -> None:
            async with self.changed:
                await self.changed.wait_for(lambda: pred() or self.ws.state.name == "CLOSED")
        try:
            await asyncio.wait_for(wait(), self.deadline)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no {what} within {self.deadline:.0f} s") from None
        if not pred():
            raise ConnectionError(f"disconnected waiting for {what}")

    # ---- views of the page ----
    def texts(self, root: int) -> str:
        return "\n".join(element_text(e[0]) for p, e in sorted(self.elements.items())
                         if p and p[0] == root and e[0] is not None)

    def button(self, label: str) -> str | None:
        for el, _ in self.elements.values():
            if el is not None and el.WhichOneof("type") == "button" and el.button.label == label:
                return el.button.id
        return None

    def own_model(self) -> bool:
        side = self.texts(SIDEBAR)
        return "trained in this session" in side and re.search(rf"seed {self.seed}(?!\d)", side) is not None

    async def run_student(self, start: asyncio.Event, delay_s: float, on_first_chart, play: bool = True) -> dict:
        """The student's steps (``play=False``: only until the first chart); returns the timings and
        ``errors``."""
        import websockets

        out: dict = {"seed": self.seed, "errors": self.errors}
        reader = None
        try:
            await start.wait()
            await asyncio.sleep(delay_s)
            t0 = time.monotonic()
            await asyncio.to_thread(self.http.page, self.query)
            ws_url = self.base.replace("http://", "ws://") + "/_stcore/stream"
            self.ws = await websockets.connect(ws_url, subprotocols=["streamlit"], origin=self.base, max_size=None,
                                               open_timeout=self.deadline,
                                               additional_headers=self.http.cookie_header(self.base + "/"))
            reader = asyncio.create_task(self._reader(t0))
            await self.rerun()
            await self.until("first chart", lambda: self.first_chart is not None)
            out["first_chart_s"] = self.first_chart
            on_first_chart()
            if not play:
                await self.until("the page's run to finish", lambda: not self.running)
                return out
            await self.until("Play button on a finished page", lambda: self.button("Play") and not self.running)
            await self.rerun(trigger=self.button("Play"))
            t_play = time.monotonic()
            await self.until("training progress", lambda: re.search(r"\((training|done)", self.texts(MAIN)))
            out["queue_wait_s"] = time.monotonic() - t_play
            await self.until("(done)", lambda: "(done)" in self.texts(MAIN))
            out["trained_s"] = time.monotonic() - t_play
            for where in ("Train", "Latent embeddings"):
                if where != "Train":
                    name = next((n for n in self.pages if n.lower().startswith("latent")), None)
                    if name is None:
                        raise LookupError(f"no Latent embeddings page among {sorted(self.pages)}")
                    self._stop_timers()
                    self.elements = {p: e for p, e in self.elements.items() if p and p[0] not in (MAIN, SIDEBAR)}
                    self.page_hash = self.pages[name]
                    await self.rerun()
                    await self.until("Latent embeddings heading",
                                     lambda: any(e[0] is not None and e[0].WhichOneof("type") == "heading"
                                                 and "Latent" in e[0].heading.body for e in self.elements.values()))
                try:
                    await self.until(f"{where}: own model in the sidebar", self.own_model)
                except TimeoutError:
                    self._error(f"{where}: sidebar shows another model: {self.texts(SIDEBAR)[-200:]!r}")
            await self.until("the page's run to finish", lambda: not self.running)
            out["model"] = next((t for t in self.texts(SIDEBAR).splitlines() if "trained in this session" in t), "")
        except Exception as e:  # noqa: BLE001 - a timeout or a crash is this student's error
            self._error(f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
        finally:
            self.closing = True
            self._stop_timers()
            for task in self.fetches:
                task.cancel()
            out["http_bytes"], out["stale_media"] = self.http.bytes, self.stale_media
            if self.ws is not None:
                await self.ws.close()
            if reader is not None:
                await asyncio.wait_for(reader, 10)
        return out


async def level(browser, base: str, n: int, n_browsers: int, deadline_s: float, server_pid: int,
                spread_s: float, seed0: int) -> dict:
    """N protocol students (and ``n_browsers`` Chromium students, seeds after theirs); with ``spread_s`` > 0
    they arrive evenly over that many seconds, else all at once."""
    start = asyncio.Event()
    charts: list = []
    first: dict = {}
    total = n + n_browsers

    def on_first_chart() -> None:
        charts.append(None)
        if len(charts) == total:
            first.update(cpu_delta(cpu0, cpu_snapshot(server_pid)))

    tasks = [asyncio.create_task(Student(base, seed0 + i, deadline_s).run_student(start, i * spread_s / total,
                                                                                   on_first_chart))
             for i in range(n)]
    btasks = [asyncio.create_task(browser_student(browser, base, seed0 + n + j, deadline_s, start,
                                                  (n + j) * spread_s / total, on_first_chart))
              for j in range(n_browsers)]
    await asyncio.sleep(0.5)
    load0, cpu0, t0 = load_avg(), cpu_snapshot(server_pid), time.monotonic()
    own0 = time.process_time()  # this script's protocol clients (all their threads), on the same cores
    start.set()
    results = await asyncio.gather(*tasks)
    bresults = await asyncio.gather(*btasks)
    wall = time.monotonic() - t0
    cpu = cpu_delta(cpu0, cpu_snapshot(server_pid))
    cpu["clients"] = time.process_time() - own0
    load1 = load_avg()
    server, rss_total = rss_split(server_pid)
    for r in bresults:
        await r.pop("context").close()
    get = lambda rs, k: [r[k] for r in rs if k in r]  # noqa: E731
    return {"n": n, "browsers": n_browsers, "spread": spread_s,
            "first_chart": get(results, "first_chart_s"), "queue_wait": get(results, "queue_wait_s"),
            "trained": get(results, "trained_s"), "errors": [e for r in results for e in r["errors"]],
            "b_first_chart": get(bresults, "first_chart_s"), "b_trained": get(bresults, "trained_s"),
            "b_errors": [e for r in bresults for e in r["errors"]], "model": results[0].get("model") if results else None,
            "stale_media": sum(r.get("stale_media", 0) for r in results),
            "http_mb": sum(r.get("http_bytes", 0) for r in results) / max(n, 1) / 1e6,
            "rss_server_mb": server, "rss_total_mb": rss_total, "cpu": cpu, "cpu_first": first, "wall_s": wall,
            "load": (load0, load1)}


def label(r: dict) -> str:
    return (f"{r['n']}" + (f" + {r['browsers']} Chromium" if r["browsers"] else "")
            + (f" over {r['spread']:.0f} s" if r["spread"] else " at once"))


def row(r: dict) -> str:
    n = r["n"] + r["browsers"]
    c, f = r["cpu"], r["cpu_first"]
    fc, qw, tr = r["first_chart"], r["queue_wait"], r["trained"]
    first_server = f"{f['server'] / n:.2f}" if f else "n/a"
    browsers = ""
    if r["browsers"]:
        browsers = (f" Chromium students: first chart {pct(r['b_first_chart'], .5):.1f} / "
                    f"{pct(r['b_first_chart'], .95):.1f} s, trained max {max(r['b_trained'], default=float('nan')):.1f}"
                    f" s ({len(r['b_trained'])} of {r['browsers']}), {len(r['b_errors'])} errors, "
                    f"{c['chromium'] / r['browsers']:.2f} Chromium CPU-s each.")
    return (f"| {label(r)} | {pct(fc, .5):.1f} / {pct(fc, .95):.1f} s | {pct(qw, .5):.1f} / {pct(qw, .95):.1f} s "
            f"| {pct(tr, .5):.1f} / {pct(tr, .95):.1f} / {max(tr, default=float('nan')):.1f} s ({len(tr)} of {r['n']}) "
            f"| {len(r['errors']) + len(r['b_errors'])} | {c['server'] / n:.2f} ({first_server}) / {c['workers'] / n:.2f} "
            f"/ {c['clients'] / max(r['n'], 1):.2f} "
            f"| {r['load'][0]:.1f} -> {r['load'][1]:.1f} | {r['rss_server_mb']:.0f} MB ({r['rss_total_mb']:.0f} MB) "
            f"|{browsers}")


HEADER = ("| students | first chart p50 / p95 | queue wait p50 / p95 | Play to trained p50 / p95 / max | errors "
          "| CPU-s per student: server (until the last first chart) / job workers / protocol client | load average (1 min) "
          "| server RSS (with workers) |\n|---|---|---|---|---|---|---|---|")


async def teacher(base: str, server_pid: int, deadline_s: float) -> tuple[float, float]:
    """load_test.teacher without a browser: one protocol student opens the app (the server imports torch
    and warms its workers), then the server and its workers go idle for 10 s (at most ``deadline_s``)."""
    from load_test import server_cpu_s, until_idle

    cpu0, t0 = server_cpu_s(server_pid), time.monotonic()
    ev = asyncio.Event()
    ev.set()
    out = await Student(base, 0, deadline_s).run_student(ev, 0.0, lambda: None, play=False)
    for e in out["errors"]:
        print(f"    teacher: {e}", flush=True)
    await until_idle(server_pid, t0, deadline_s)
    return time.monotonic() - t0, server_cpu_s(server_pid) - cpu0


async def main_async(args) -> None:
    from concurrent.futures import ThreadPoolExecutor

    # the students' HTTP fetches run in threads: enough of them that no student waits for another's
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=4 * MAX_STUDENTS))
    port = free_port()
    proc = start_server(port, args.workshop)
    base = f"http://127.0.0.1:{port}"
    rows = []
    print(f"load average at start: {load_avg():.2f} ({os.cpu_count()} CPUs); "
          + (f"workshop server, {args.workshop} app processes" if args.workshop else "one Streamlit process"),
          flush=True)
    pw = browser = spy = None
    try:
        if args.browsers:
            from playwright.async_api import async_playwright
            pw = await async_playwright().start()
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        if not args.cold:
            took, cpu = await teacher(base, proc.pid, args.deadline)
            print(f"teacher's first page and the server's warm-up: {took:.0f} s, {cpu:.1f} server CPU-s; "
                  f"load average {load_avg():.2f}", flush=True)
        if args.profile:  # after the warm-up: the profile is the students' levels only
            from load_test import start_profile
            spy = start_profile(proc.pid, args.profile, bool(args.workshop))
        seed0 = 1000
        for n in args.levels:
            for spread in [0.0] + ([args.arrival_spread] if args.arrival_spread else []):
                r = await level(browser, base, min(n, MAX_STUDENTS), min(args.browsers, MAX_BROWSERS), args.deadline,
                                proc.pid, spread, seed0)
                seed0 += MAX_STUDENTS + MAX_BROWSERS  # a fresh model per student, never one trained before
                rows.append(r)
                print(row(r), flush=True)
                kinds: dict = {}
                for e in r["errors"] + [f"Chromium: {e}" for e in r["b_errors"]]:
                    kinds[e[:120]] = kinds.get(e[:120], 0) + 1
                for e, count in kinds.items():
                    print(f"    {count} x {e}", flush=True)
                print(f"    HTTP per protocol student: {r['http_mb']:.1f} MB; /media/ files already dropped when "
                      f"fetched (not errors): {r['stale_media']}", flush=True)
                if r["model"]:
                    print(f"    the first student's sidebar (seed {seed0 - MAX_STUDENTS - MAX_BROWSERS}) on Latent "
                          f"embeddings: {r['model']}", flush=True)
    finally:
        from load_test import stop_profile
        stop_profile(spy)
        if browser is not None:
            await browser.close()
        if pw is not None:
            await pw.stop()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except Exception:  # noqa: BLE001
            proc.kill()
    print("\n" + HEADER)
    for r in rows:
        print(row(r))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[10, 20, 30],
                        help=f"protocol students per level (each at most {MAX_STUDENTS})")
    parser.add_argument("--browsers", type=int, default=0, metavar="N",
                        help=f"also N real Chromium students per level (at most {MAX_BROWSERS}; load_test.student)")
    parser.add_argument("--deadline", type=float, default=150.0, help="seconds each student may wait per step")
    parser.add_argument("--arrival-spread", type=float, default=0.0, metavar="SECONDS",
                        help="also run each level with the students arriving evenly over SECONDS (its own row)")
    parser.add_argument("--cold", action="store_true", help="no teacher warm-up before the first level")
    parser.add_argument("--workshop", type=int, default=0, metavar="N",
                        help="serve the app as a workshop server: nginx in front of N app processes (app/workshop.py)")
    parser.add_argument("--profile", metavar="FILE", help="record the server process with py-spy from the first level "
                        "on (pip install py-spy) into FILE (collapsed stacks of the thread holding the GIL)")
    args = parser.parse_args()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
