"""A workshop server: nginx in front of several Streamlit processes of the app, on one machine.

    mmvae workshop                                   # http://127.0.0.1:8501, one app process per core
    mmvae workshop --address 0.0.0.0 --port 8501 --processes 2

Why: one Streamlit process runs every page of every student on one Python thread. With 30 students
arriving in the same second, the last one waits for the other 29 first pages in that one process
(README, "A workshop server"). Here

* N Streamlit processes of the app (``--processes``, default: the number of cores) listen on
  127.0.0.1 only, each with its own job pool of ``--job-workers`` workers (default: the cores
  divided among the processes, at least one) or all on one Ray cluster (``--ray-address``);
* nginx (the Debian package ``nginx``; no root needed) listens on ``--address:--port``, sends
  Streamlit's frontend files (``/static/``, 7.5 MB a student, plotly's 4.7 MB script among them)
  itself, gzip-compressed once at start (``gzip_static``), and passes everything else (the page,
  the websocket, ``/media/`` files, uploads) to one of the app processes;
* a student stays on one process: Streamlit keeps a session, its ``/media/`` files and its
  uploads in the process that served its websocket. The first response sets a cookie
  (``mmvae_backend``, chosen at random per browser by nginx's ``split_clients``); later requests
  with it go to the same process; a cookie naming no process counts as none.

The command stays in the foreground; Ctrl-C (or SIGTERM) stops nginx and every app process and removes
its run folder (a fresh temporary folder with nginx's configuration, logs, temporary files and the
compressed frontend files). If one of them stops, the others are stopped too and the command exits with
an error. Everything it can check is checked before anything starts: nginx is installed, the port is
free, the options are in range.
"""
from __future__ import annotations

import argparse
import gzip
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "app", "streamlit_app.py")
MAX_PROCESSES = 16
COOKIE = "mmvae_backend"
# what nginx's gzip_static may send compressed (the rest: fonts, images, are compressed already)
COMPRESS = (".js", ".css", ".svg", ".json", ".html", ".txt", ".map", ".ttf")
TYPES = {"text/html": "html", "text/css": "css", "application/javascript": "js mjs", "application/json": "json map",
         "image/svg+xml": "svg", "image/png": "png", "image/jpeg": "jpg jpeg", "image/gif": "gif",
         "image/x-icon": "ico", "font/woff2": "woff2", "font/woff": "woff", "font/ttf": "ttf",
         "application/wasm": "wasm", "text/plain": "txt"}


def find_nginx() -> str | None:
    """nginx on the PATH, else where Debian puts it (/usr/sbin is not on a plain user's PATH)."""
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                          if os.access(p, os.X_OK)), None)


def streamlit_static() -> str:
    """The folder Streamlit serves its frontend from (``index.html`` and ``static/``)."""
    import streamlit

    return os.path.join(os.path.dirname(streamlit.__file__), "static")


def precompress(src: str, dest: str, level: int = 6) -> tuple[int, int]:
    """Copy ``src/static`` into ``dest/static`` (23 MB; a copy, not a link: run as root, nginx's worker is
    another user, who may not read a Python installed in root's home), and beside each text file a
    ``.gz`` copy that nginx's ``gzip_static`` sends to browsers that accept gzip (compressed once here,
    never per request). Returns (bytes of the text files, bytes compressed)."""
    raw = packed = 0
    top = os.path.join(src, "static")
    for folder, _, files in os.walk(top):
        out = os.path.join(dest, "static", os.path.relpath(folder, top))
        os.makedirs(out, exist_ok=True)
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                body = f.read()
            with open(os.path.join(out, name), "wb") as f:
                f.write(body)
            if name.endswith(COMPRESS):
                gz = gzip.compress(body, level, mtime=0)
                if len(gz) < len(body):
                    with open(os.path.join(out, name + ".gz"), "wb") as f:
                        f.write(gz)
                    raw, packed = raw + len(body), packed + len(gz)
    return raw, packed


def nginx_config(address: str, port: int, backends: list[int], run_dir: str, static_root: str) -> str:
    """nginx's whole configuration: one master and one worker process (the frontend files are sent by
    the kernel, ``sendfile``), everything it writes inside ``run_dir``."""
    n = len(backends)
    upstreams = "\n".join(f"    upstream mmvae_{i} {{ server 127.0.0.1:{p}; }}" for i, p in enumerate(backends))
    # a new browser: a process at random, evenly (split_clients hashes its key; the request id is random)
    shares = "\n".join(f"        {100 / n:.2f}% {i};" for i in range(n - 1)) + f"\n        * {n - 1};"
    known = "\n".join(f'        "{i}" {i};' for i in range(n))  # only a cookie naming a process is kept
    types = "\n".join(f"        {t} {ext};" for t, ext in TYPES.items())
    r = run_dir
    return f"""# written by app/workshop.py for this run; removed when it stops
worker_processes 1;
daemon off;
pid {r}/nginx.pid;
error_log {r}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    types {{
{types}
    }}
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path {r}/client_body;
    proxy_temp_path {r}/proxy;
    fastcgi_temp_path {r}/fastcgi;
    uwsgi_temp_path {r}/uwsgi;
    scgi_temp_path {r}/scgi;
    sendfile on;
    tcp_nopush on;
    server_tokens off;
    client_max_body_size 200m;  # Streamlit's own upload limit (server.maxUploadSize)

{upstreams}
    split_clients "$request_id" $mmvae_new {{
{shares}
    }}
    map $cookie_{COOKIE} $mmvae_backend {{
{known}
        default $mmvae_new;
    }}
    map $http_upgrade $connection_upgrade {{ default upgrade; "" close; }}

    server {{
        listen {address}:{port};
        location /static/ {{  # Streamlit's frontend: content-hashed names, never change
            root {static_root};
            gzip_static on;
            add_header Cache-Control "public, max-age=31536000, immutable";
        }}
        location / {{
            proxy_pass http://mmvae_$mmvae_backend;
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_read_timeout 1d;  # a student's websocket stays open all day
            proxy_send_timeout 1d;
            add_header Set-Cookie "{COOKIE}=$mmvae_backend; Path=/; HttpOnly; SameSite=Lax" always;
        }}
    }}
}}
"""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_is_free(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as s:
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def warm(port: int, timeout: float) -> None:
    """Open one session on the app process at ``port`` and run its first page, as a first visitor would:
    the process imports torch, loads the shipped model and starts its warm-up (app/warmup.py), so the
    room's first students do not pay for it. Streamlit runs no app code before a session exists."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.sync.client import connect

    base = f"http://127.0.0.1:{port}"
    msg = BackMsg()
    msg.rerun_script.query_string = ""
    msg.rerun_script.context_info.url = base + "/"
    t0 = time.monotonic()
    with connect(base.replace("http", "ws", 1) + "/_stcore/stream", subprotocols=["streamlit"], origin=base,
                 open_timeout=timeout, max_size=None) as ws:
        ws.send(msg.SerializeToString())
        while True:
            left = timeout - (time.monotonic() - t0)
            if left <= 0:
                raise RuntimeError(f"the app process on port {port} did not finish its first page within {timeout:.0f} s")
            fm = ForwardMsg()
            fm.ParseFromString(ws.recv(timeout=left))
            if fm.WhichOneof("type") == "script_finished":
                return


def cpu_seconds(pid: int) -> float | None:
    """CPU-seconds a process has used (Linux's /proc), None where that cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def until_quiet(pids: list[int], timeout: float, quiet_s: float = 8.0) -> None:
    """Wait (at most ``timeout`` s) until the processes together use under 5% of a core for ``quiet_s``
    seconds: the warm-up threads started by ``warm`` are done (UMAP's waits for 5 s without a page start)."""
    t0 = last_busy = time.monotonic()
    before = [cpu_seconds(p) for p in pids]
    while time.monotonic() - t0 < timeout and time.monotonic() - last_busy < quiet_s:
        time.sleep(0.5)
        now = [cpu_seconds(p) for p in pids]
        if None in now or None in before:
            return  # not Linux: nothing to measure
        if sum(now) - sum(before) > 0.05 * 0.5:
            last_busy = time.monotonic()
        before = now


def parse(argv: list[str] | None) -> argparse.Namespace:
    cores = os.cpu_count() or 1
    p = argparse.ArgumentParser(prog="mmvae workshop", description=__doc__.split("\n\n")[0])
    p.add_argument("--address", default="127.0.0.1", help="where students connect (default: 127.0.0.1; "
                   "0.0.0.0 for a room on the network)")
    p.add_argument("--port", type=int, default=8501, help="the students' port (default: 8501)")
    p.add_argument("--processes", type=int, default=cores,
                   help=f"Streamlit processes of the app (default: the number of cores, {cores}; 1 to {MAX_PROCESSES})")
    p.add_argument("--job-workers", type=int, default=None, metavar="N",
                   help="training workers per app process (default: the cores divided among the processes, at least 1)")
    p.add_argument("--ray-address", default=None, help="train every process's jobs on this Ray cluster instead")
    p.add_argument("--start-timeout", type=float, default=120.0, help="seconds each app process may take to start")
    a = p.parse_args(argv)
    if not 1 <= a.processes <= MAX_PROCESSES:
        p.error(f"--processes must be from 1 to {MAX_PROCESSES}, got {a.processes}")
    if not 1 <= a.port <= 65535:
        p.error(f"--port must be from 1 to 65535, got {a.port}")
    if a.job_workers is not None and not 1 <= a.job_workers <= 256:
        p.error(f"--job-workers must be from 1 to 256, got {a.job_workers}")
    if a.job_workers is None:
        a.job_workers = max(1, cores // a.processes)
    return a


def stop(procs: list[subprocess.Popen], timeout: float = 15.0) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    t0 = time.monotonic()
    for p in procs:
        try:
            p.wait(timeout=max(0.1, timeout - (time.monotonic() - t0)))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    nginx = find_nginx()
    if nginx is None:
        sys.exit("mmvae workshop: nginx is not installed (Debian/Ubuntu: sudo apt-get install -y nginx); "
                 "'mmvae app' runs the app as one process without it")
    if not port_is_free(args.address, args.port):
        sys.exit(f"mmvae workshop: {args.address}:{args.port} is in use; choose another --port")
    run_dir = tempfile.mkdtemp(prefix="mmvae-workshop-")
    os.chmod(run_dir, 0o755)  # run as root, nginx's worker is another user and reads the compressed files
    procs: list[subprocess.Popen] = []
    stopping = []

    def on_signal(signum, frame) -> None:
        stopping.append(signum)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        raw, packed = precompress(streamlit_static(), run_dir)
        ports = [free_port() for _ in range(args.processes)]
        env = dict(os.environ, OMP_NUM_THREADS="1", MMVAE_JOB_WORKERS=str(args.job_workers))
        if args.ray_address:
            env["MMVAE_RAY_ADDRESS"] = args.ray_address
        for i, port in enumerate(ports):
            cmd = [sys.executable, "-m", "streamlit", "run", SCRIPT, "--server.address", "127.0.0.1",
                   "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"]
            # each its own process group: a Ctrl-C in the terminal reaches this command only, which stops them in order
            procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True,
                                          stdout=open(os.path.join(run_dir, f"app-{i}.log"), "wb"),
                                          stderr=subprocess.STDOUT))
        t0 = time.monotonic()
        waiting = set(range(args.processes))
        while waiting and not stopping:
            for i in list(waiting):
                if procs[i].poll() is not None:
                    raise RuntimeError(f"app process {i} stopped while starting (exit status {procs[i].returncode}); "
                                       f"its log: {tail(os.path.join(run_dir, f'app-{i}.log'))}")
                if healthy(f"http://127.0.0.1:{ports[i]}/_stcore/health"):
                    waiting.discard(i)
            if time.monotonic() - t0 > args.start_timeout:
                raise RuntimeError(f"{len(waiting)} app process(es) did not start within {args.start_timeout:.0f} s")
            time.sleep(0.2)
        print(f"mmvae workshop: {args.processes} app processes started; warming them up (first page, torch, UMAP)",
              flush=True)
        for i, port in enumerate(ports):
            if not stopping:
                try:
                    warm(port, args.start_timeout)
                except Exception as e:  # noqa: BLE001 - websockets' errors: reported as this command's error
                    raise RuntimeError(f"app process {i} failed its first page ({type(e).__name__}: {e}); its log: "
                                       f"{tail(os.path.join(run_dir, f'app-{i}.log'))}") from e
        if not stopping:
            until_quiet([p.pid for p in procs], args.start_timeout)
        conf = os.path.join(run_dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(nginx_config(args.address, args.port, ports, run_dir, run_dir))
        procs.append(subprocess.Popen([nginx, "-p", run_dir, "-c", conf, "-e", os.path.join(run_dir, "error.log")],
                                      start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        host = "127.0.0.1" if args.address in ("0.0.0.0", "::") else args.address
        url = f"http://{host}:{args.port}"
        while not stopping and not healthy(url + "/_stcore/health"):
            if procs[-1].poll() is not None:
                raise RuntimeError(f"nginx stopped (exit status {procs[-1].returncode}): "
                                   f"{tail(os.path.join(run_dir, 'error.log'))}")
            time.sleep(0.1)
        if not stopping:
            print(f"mmvae workshop: {url} ({args.processes} app processes, {args.job_workers} training worker(s) "
                  f"each; frontend files {raw / 1e6:.1f} MB, {packed / 1e6:.1f} MB compressed, sent by nginx; logs in "
                  f"the run folder {run_dir}). Ctrl-C stops it.", flush=True)
        while not stopping:
            for i, p in enumerate(procs):
                if p.poll() is not None:
                    what = "nginx" if i == len(procs) - 1 else f"app process {i}"
                    raise RuntimeError(f"{what} stopped (exit status {p.returncode}); stopping the others")
            time.sleep(0.5)
        return 0
    except RuntimeError as e:
        print(f"mmvae workshop: {e}", file=sys.stderr, flush=True)
        return 1
    finally:
        stop(procs[::-1])  # nginx first: no request reaches a stopping app process
        for s, h in old.items():
            signal.signal(s, h)
        shutil.rmtree(run_dir, ignore_errors=True)


def tail(path: str, n: int = 600) -> str:
    try:
        with open(path, "rb") as f:
            return f.read()[-n:].decode("utf-8", "replace").strip() or "(empty)"
    except OSError:
        return "(none)"


if __name__ == "__main__":
    sys.exit(main())
