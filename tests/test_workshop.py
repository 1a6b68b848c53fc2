"""The workshop server (app/workshop.py, ``mmvae workshop``): nginx in front of several app processes.

Checked: the options before anything starts; nginx accepts the configuration written for 1 to 3
processes; and against a real two-process server on 127.0.0.1: nginx sends the frontend's files
itself, compressed and byte-identical after decompression; a browser's cookie keeps it on one app
process (an upload to its session succeeds there and is refused by the other process, as Streamlit
refuses any request for a session it does not hold); two protocol students, one on each process,
get their charts, and the one who presses Play sees its own trained model on two pages while the
other still sees the shipped model; Ctrl-C (SIGINT) stops nginx and every app process and removes
the run folder.
"""
from __future__ import annotations

import asyncio
import contextlib
import gzip
import http.cookiejar
import re
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

from app import workshop  # noqa: E402
from tests.app_server import free_port  # noqa: E402

NGINX = workshop.find_nginx()
needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (README, Set up)")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mmvae", "workshop", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("args, message", [
    (["--address", "::"], "--address must be an IPv4 address such as 0.0.0.0 or 127.0.0.1, got '::'"),
    (["--address", "localhost"], "--address must be an IPv4 address"),
    (["--start-timeout", "0"], "--start-timeout must be from 1 to 3600 seconds, got 0"),
    (["--processes", "0"], "--processes must be from 1 to 16, got 0"),
    (["--processes", "17"], "--processes must be from 1 to 16, got 17"),
    (["--port", "0"], "--port must be from 1 to 65535, got 0"),
    (["--job-workers", "0"], "--job-workers must be from 1 to 256, got 0"),
])
def test_options_out_of_range_are_refused(args, message):
    done = run_cli(*args)
    assert done.returncode == 2 and message in done.stderr, done.stderr


@needs_nginx  # nginx is checked first
def test_a_port_in_use_is_refused_before_anything_starts():
    before = set(os.listdir(tempfile.gettempdir()))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        done = run_cli("--port", str(port))
    assert done.returncode == 1 and f"127.0.0.1:{port} is in use" in done.stderr, done.stderr
    left = {n for n in set(os.listdir(tempfile.gettempdir())) - before if n.startswith("mmvae-workshop-")}
    assert not left, left  # nothing was started or written


def test_without_nginx_the_error_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setattr(workshop, "find_nginx", lambda: None)
    with pytest.raises(SystemExit) as e:
        workshop.main(["--port", str(free_port())])
    assert "nginx is not installed" in str(e.value) and "apt-get install -y nginx" in str(e.value)


def test_job_workers_default_to_the_cores_shared_among_the_processes():
    cores = os.cpu_count() or 1
    assert workshop.parse(["--processes", "1"]).job_workers == cores
    assert workshop.parse(["--processes", "16"]).job_workers == max(1, cores // 16)
    assert workshop.parse(["--processes", "3", "--job-workers", "5"]).job_workers == 5


@needs_nginx
@pytest.mark.parametrize("n", [1, 2, 3])
def test_nginx_accepts_the_configuration(n, tmp_path):
    conf = tmp_path / "nginx.conf"
    conf.write_text(workshop.nginx_config("127.0.0.1", free_port(), [free_port() for _ in range(n)], str(tmp_path),
                                          str(tmp_path)))
    done = subprocess.run(workshop.nginx_command(NGINX, str(tmp_path), "-t"), capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    text = conf.read_text()
    for i in range(n):  # a cookie naming process i keeps the browser there; no other value is trusted
        assert f'"{i}" {i};' in text
    assert f'"{n}"' not in text


def test_precompressed_files_decompress_to_the_originals(tmp_path):
    src = tmp_path / "src"
    (src / "static" / "js").mkdir(parents=True)
    (src / "static" / "js" / "a.js").write_text("var x = 1;\n" * 500)
    (src / "static" / "js" / "b.woff2").write_bytes(os.urandom(2000))
    raw, packed = workshop.precompress(str(src), str(tmp_path / "out"))
    out = tmp_path / "out" / "static" / "js"
    assert (out / "a.js").read_bytes() == (src / "static" / "js" / "a.js").read_bytes()
    assert gzip.decompress((out / "a.js.gz").read_bytes()) == (out / "a.js").read_bytes()
    assert (out / "b.woff2").read_bytes() == (src / "static" / "js" / "b.woff2").read_bytes()
    assert not (out / "b.woff2.gz").exists()  # fonts are compressed already
    assert raw == 5500 and 0 < packed < raw


class Workshop:
    """``mmvae workshop`` on 127.0.0.1 with two app processes, started and stopped by the test."""

    def __init__(self, timeout: float = 360.0) -> None:
        self.port = free_port()
        self.cookie = f"mmvae_backend_{self.port}"
        env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", MMVAE_APP_WARM="torch")
        self.proc = subprocess.Popen([sys.executable, "-m", "mmvae", "workshop", "--port", str(self.port),
                                      "--processes", "2", "--job-workers", "1"], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [self.lines.put(line) for line in self.proc.stdout], daemon=True).start()
        self.out = ""
        deadline = time.monotonic() + timeout
        try:
            while "Ctrl-C stops it" not in self.out:
                try:
                    self.out += self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
                except queue.Empty:
                    raise TimeoutError(f"mmvae workshop did not start within {timeout:.0f} s: {self.out}") from None
                if self.proc.poll() is not None and self.lines.empty():
                    raise RuntimeError(f"mmvae workshop stopped: {self.out}")
        except BaseException:
            self.stop()
            raise
        self.url = f"http://127.0.0.1:{self.port}"

    def rest(self) -> str:
        """What the command printed after its address line (once it has stopped)."""
        self.proc.wait(timeout=60)
        time.sleep(0.2)  # the reader thread's last lines
        out = ""
        while not self.lines.empty():
            out += self.lines.get()
        return out

    def tree(self) -> list[int]:
        from load_test import descendants

        return descendants(self.proc.pid)

    def stop(self) -> int:
        """Ctrl-C; if the command has not stopped within 60 s, every process under it is killed."""
        pids = self.tree()
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            for pid in [self.proc.pid, *pids]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            raise


def alive(pids: list[int]) -> list[int]:
    from load_test import comm

    out = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:  # gone
            continue
        if state != "Z":
            out.append((pid, comm(pid)))
    return out


def route_cookie(name: str, backend: str) -> http.cookiejar.Cookie:
    """The cookie nginx routes by, as a browser holds it after its first response."""
    return http.cookiejar.Cookie(0, name, backend, None, False, "127.0.0.1", False, False, "/", True,
                                 False, None, False, None, None, {})


def opener(name: str, backend: str | None):
    jar = http.cookiejar.CookieJar()
    if backend is not None:
        jar.set_cookie(route_cookie(name, backend))
    return jar, urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                            urllib.request.HTTPCookieProcessor(jar))


async def session_id(url: str, cookie: str) -> tuple[str, object]:
    """Open a session through nginx (websocket, with the browser's cookies) and return its id."""
    import websockets
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    ws = await websockets.connect(url.replace("http", "ws", 1) + "/_stcore/stream", subprotocols=["streamlit"],
                                  origin=url, additional_headers={"Cookie": cookie}, max_size=None, open_timeout=60)
    msg = BackMsg()
    msg.rerun_script.context_info.url = url + "/"
    await ws.send(msg.SerializeToString())
    while True:
        fm = ForwardMsg()
        fm.ParseFromString(await asyncio.wait_for(ws.recv(), 120))
        if fm.WhichOneof("type") == "new_session":
            return fm.new_session.initialize.session_id, ws


def upload(url: str, op, jar, sid: str, file_id: str) -> int:
    """PUT a small file to ``sid``'s uploads, as the file uploader does (XSRF header from the cookie)."""
    token = next(c.value for c in jar if c.name == "_streamlit_xsrf")
    boundary = "mmvaeboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"w.csv\"\r\n"
            f"Content-Type: text/csv\r\n\r\ndepth,AI\r\n1,2\r\n--{boundary}--\r\n").encode()
    req = urllib.request.Request(f"{url}/_stcore/upload_file/{sid}/{file_id}", data=body, method="PUT",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                                          "X-Xsrftoken": token, "Origin": url})
    try:
        with op.open(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


@needs_nginx
def test_workshop_server_two_processes_sticky_sessions_and_clean_stop():
    from load_test_protocol import SIDEBAR, Student

    w = Workshop()
    try:
        assert "2 app process(es), 1 training worker(s) each" in w.out
        run_dir = re.search(r"run folder (\S+mmvae-workshop-\S+?)\)", w.out).group(1)
        assert os.path.isfile(os.path.join(run_dir, "nginx.conf"))
        pids = w.tree()
        assert [c for _, c in alive(pids)].count("nginx") == 2  # nginx's master and its one worker
        # 1. nginx sends Streamlit's frontend itself: compressed once at start, the same bytes
        static = os.path.join(workshop.streamlit_static(), "static", "js")
        plotly = next(n for n in sorted(os.listdir(static)) if n.startswith("PlotlyChart.") and n.endswith(".js"))
        req = urllib.request.Request(f"{w.url}/static/js/{plotly}", headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.headers["Server"] == "nginx" and r.headers["Content-Encoding"] == "gzip"
            assert "immutable" in r.headers["Cache-Control"] and r.headers["Vary"] == "Accept-Encoding"
            body = gzip.decompress(r.read())
        with open(os.path.join(static, plotly), "rb") as f:
            assert body == f.read()
        with urllib.request.urlopen(f"{w.url}/static/js/{plotly}", timeout=30) as r:  # no gzip asked: plain
            assert r.headers.get("Content-Encoding") is None and len(r.read()) == len(body)

        # 2. a browser without the cookie gets one naming a process, both processes get browsers (40 new
        # browsers all on one process: probability 2^-39); a forged value is replaced by a valid one
        def route(cookie):
            jar, op = opener(w.cookie, cookie)
            with op.open(f"{w.url}/_stcore/health", timeout=30) as r:
                assert r.status == 200
            return [c.value for c in jar if c.name == w.cookie]

        new = [route(None) for _ in range(40)]
        assert all(len(v) == 1 for v in new) and {v[0] for v in new} == {"0", "1"}, new
        for forged in ("7", "x", "-1", "01"):
            assert route(forged)[0] in ("0", "1")
        for kept in ("0", "1"):
            assert route(kept) == [kept]

        # 3. sticky: an upload to a session works on its own process and is refused by the other one
        async def uploads() -> tuple[list[int], list[int]]:
            jar, op = opener(w.cookie, "0")
            op.open(f"{w.url}/_stcore/health", timeout=30).close()  # Streamlit's XSRF cookie, from process 0
            cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
            sid, ws = await session_id(w.url, cookie)
            try:
                jar1, op1 = opener(w.cookie, "1")
                for c in jar:
                    if c.name == "_streamlit_xsrf":
                        jar1.set_cookie(c)
                # six each: routed at random instead, all twelve would come out right with probability 1/4096
                own = [await asyncio.to_thread(upload, w.url, op, jar, sid, f"own-{i}") for i in range(6)]
                other = [await asyncio.to_thread(upload, w.url, op1, jar1, sid, f"other-{i}") for i in range(6)]
            finally:
                await ws.close()
            return own, other

        own, other = asyncio.run(uploads())
        assert all(200 <= c < 300 for c in own), own
        assert all(c in (400, 403) for c in other), other  # Streamlit: "Invalid session_id" (or the XSRF check)

        # 4. a student on each process: charts, one trains and sees its own model, the other does not
        async def students():
            a, b = Student(w.url, 4201, 90.0), Student(w.url, 4202, 90.0)
            for s, backend in ((a, "0"), (b, "1")):
                s.http.cookies.set_cookie(route_cookie(w.cookie, backend))
            start = asyncio.Event()
            tasks = [asyncio.create_task(a.run_student(start, 0.0, lambda: None)),
                     asyncio.create_task(b.run_student(start, 0.0, lambda: None, play=False))]
            start.set()
            return (*await asyncio.gather(*tasks), a, b)

        out_a, out_b, a, b = asyncio.run(students())
        assert out_a["errors"] == [] and out_b["errors"] == [], (out_a["errors"], out_b["errors"])
        for s, backend in ((a, "0"), (b, "1")):  # nobody's cookie was changed on the way
            assert [c.value for c in s.http.cookies if c.name == w.cookie] == [backend]
        assert "trained_s" in out_a and "seed 4201" in out_a["model"] and "trained in this session" in out_a["model"]
        side_b = b.texts(SIDEBAR)
        assert "trained in this session" not in side_b and "4201" not in side_b, side_b
    finally:
        code = w.stop()  # Ctrl-C
    assert code == 0
    assert "mmvae workshop: stopped nginx and 2 app process(es); run folder removed" in w.rest()
    t0 = time.monotonic()
    while alive(pids) and time.monotonic() - t0 < 15:  # the last job worker leaves once its pipe closes
        time.sleep(0.2)
    assert alive(pids) == []  # nginx, both app processes and their job workers stopped
    assert not os.path.exists(run_dir)  # nginx's configuration, logs and the compressed files: removed


@needs_nginx
def test_ctrl_c_while_it_starts_stops_everything():
    """A Ctrl-C during the warm-up: the command stops within seconds, as interrupted (130), and leaves
    no process and no run folder."""
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", MMVAE_APP_WARM="torch")
    proc = subprocess.Popen([sys.executable, "-m", "mmvae", "workshop", "--port", str(port), "--processes", "2"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    from load_test import cmdline, descendants

    base = "/tmp" if os.geteuid() == 0 else tempfile.gettempdir()  # where the command makes its run folder
    t0, pids = time.monotonic(), []
    while time.monotonic() - t0 < 120:  # until both app processes run
        pids = descendants(proc.pid)
        if sum(" -m streamlit run " in cmdline(pid) for pid in pids) >= 2:
            break
        time.sleep(0.2)
    time.sleep(2.0)
    pids = descendants(proc.pid)
    folders = {n for n in os.listdir(base) if n.startswith("mmvae-workshop-")}
    t_int = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    out = proc.stdout.read()
    assert code == 130 and time.monotonic() - t_int < 45, (code, out)
    assert "Ctrl-C stops it" not in out
    t0 = time.monotonic()
    while alive(pids) and time.monotonic() - t0 < 15:
        time.sleep(0.2)
    assert len(pids) >= 2 and alive(pids) == []
    assert folders and not folders & set(os.listdir(base))  # its run folder existed and is gone


def test_a_room_address_names_this_machine_never_loopback():
    urls = workshop.room_urls(8501)
    assert urls[0] == f"http://{socket.gethostname()}:8501"
    assert all(u.endswith(":8501") and "//127." not in u for u in urls), urls


@needs_nginx
def test_a_full_disk_while_it_starts_is_one_clear_line(monkeypatch, capsys):
    def full(src, dest):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(workshop, "precompress", full)
    base = "/tmp" if os.geteuid() == 0 else tempfile.gettempdir()
    before = set(os.listdir(base))
    assert workshop.main(["--port", str(free_port())]) == 1
    err = capsys.readouterr().err
    assert "mmvae workshop: [Errno 28] No space left on device" in err and "Traceback" not in err
    assert not [n for n in set(os.listdir(base)) - before if n.startswith("mmvae-workshop-")]  # nothing ran: no folder
