"""A workshop server: nginx in front of one or more Streamlit processes of the app, on one machine.

    mmvae workshop                                   # http://127.0.0.1:8501, one app process
    mmvae workshop --address 0.0.0.0 --port 8501 --processes 2

Why: one Streamlit process runs every page of every student on one Python thread, and sends them all
Streamlit's frontend (7.5 MB a student) from it. With 30 students arriving in the same second, the
last one waited for the other 29 in that one thread (README, "A workshop server"). Here

* N Streamlit processes of the app (``--processes``, default 1) listen on 127.0.0.1 only, each with
  its own job pool of ``--job-workers`` workers (default: the cores divided among the processes, at
  least one) or all on one Ray cluster (``--ray-address``);
* nginx (the Debian package ``nginx``; no root needed) listens on ``--address:--port``, sends
  Streamlit's frontend files (``/static/``, 7.5 MB a student, plotly's 4.7 MB script among them)
  itself, gzip-compressed once at start (``gzip_static``), and passes everything else (the page,
  the websocket, ``/media/`` files, uploads) to one of the app processes;
* a student stays on one process: Streamlit keeps a session, its ``/media/`` files and its
  uploads in the process that served its websocket. The first response sets a cookie
  (``mmvae_backend_PORT``, a process chosen at random per browser by nginx's ``split_clients``);
  later requests with it go to the same process; a cookie naming no process counts as none.

The command stays in the foreground; Ctrl-C (SIGINT, SIGTERM or SIGHUP; also while it starts) stops
nginx and every app process with its job workers and removes its run folder (a fresh temporary folder
with nginx's configuration, the logs, temporary files and the compressed frontend files). Each child
also gets SIGTERM from the kernel if this command dies without cleaning up (``PR_SET_PDEATHSIG``,
Linux). If one of them stops, the others are stopped too, the command exits with status 1 and keeps
the run folder for its logs. Everything it can check is checked before any app process starts: the
options are in range, nginx is installed and accepts the configuration (``nginx -t``), the port is
free.
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
from ipaddress import IPv4Address

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
    the kernel, ``sendfile``), everything it writes inside ``run_dir``. The routing cookie is named
    after the port (``mmvae_backend_PORT``), so two workshop servers on one host never share it."""
    n = len(backends)
    cookie = f"{COOKIE}_{port}"
    upstreams = "\n".join(f"    upstream mmvae_{i} {{ server 127.0.0.1:{p}; }}" for i, p in enumerate(backends))
    # a new browser: a process at random, evenly (split_clients hashes its key; the request id is random)
    shares = "\n".join(f"        {100 / n:.2f}% {i};" for i in range(n - 1)) + f"\n        * {n - 1};"
    known = "\n".join(f'        "{i}" {i};' for i in range(n))  # only a cookie naming a process is kept
    types = "\n".join(f"        {t} {ext};" for t, ext in TYPES.items())
    r = run_dir
    return f"""# written by app/workshop.py for this run; removed when it stops
worker_processes 1;
daemon off;
pid "{r}/nginx.pid";
error_log "{r}/error.log" warn;
events {{ worker_connections 4096; }}
http {{
    types {{
{types}
    }}
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path "{r}/client_body";
    proxy_temp_path "{r}/proxy";
    fastcgi_temp_path "{r}/fastcgi";
    uwsgi_temp_path "{r}/uwsgi";
    scgi_temp_path "{r}/scgi";
    sendfile on;
    tcp_nopush on;
    server_tokens off;
    gzip_vary on;  # Vary: Accept-Encoding, so a shared proxy never hands the compressed file to a browser that did not ask
    client_max_body_size 210m;  # Streamlit's own upload limit (server.maxUploadSize, 200 MB) and the form's overhead

{upstreams}
    split_clients "$request_id" $mmvae_new {{
{shares}
    }}
    map $cookie_{cookie} $mmvae_backend {{
{known}
        default $mmvae_new;
    }}
    map $http_upgrade $connection_upgrade {{ default upgrade; "" close; }}

    server {{
        listen {address}:{port};
        location /static/ {{  # Streamlit's frontend: content-hashed names, never change
            root "{static_root}";
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
            add_header Set-Cookie "{cookie}=$mmvae_backend; Path=/; HttpOnly; SameSite=Lax" always;
        }}
    }}
}}
"""


def free_port(host: str = "127.0.0.1", avoid: set[int] | None = None) -> int:
    while True:
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in (avoid or set()):
            return port


def port_is_free(address: str, port: int) -> bool:
    """Whether nginx could listen there: a bind with SO_REUSEADDR, as nginx's own (a port left in
    TIME_WAIT by the last room's connections is free; one with a listener is not)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True


LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 never through an http_proxy


def healthy(url: str) -> bool:
    try:
        with LOCAL.open(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def warm(port: int, timeout: float, stopping=lambda: False) -> None:
    """Open one session on the app process at ``port`` and run its first page, as a first visitor would:
    the process imports torch, loads the shipped model and starts its warm-up (app/warmup.py), so the
    room's first students do not pay for it. Streamlit runs no app code before a session exists. A page
    that ends with an exception or a compile error is an error here."""
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
        while not stopping():
            left = timeout - (time.monotonic() - t0)
            if left <= 0:
                raise RuntimeError(f"the app process on port {port} did not finish its first page within {timeout:.0f} s")
            try:
                data = ws.recv(timeout=min(left, 0.5))  # short slices: a Ctrl-C is seen within half a second
            except TimeoutError:
                continue
            fm = ForwardMsg()
            fm.ParseFromString(data)
            kind = fm.WhichOneof("type")
            if kind == "delta" and fm.delta.WhichOneof("type") == "new_element" \
                    and fm.delta.new_element.WhichOneof("type") == "exception":
                e = fm.delta.new_element.exception
                raise RuntimeError(f"the first page raised {e.type}: {e.message}")
            if kind == "script_finished" and fm.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                if fm.script_finished != ForwardMsg.FINISHED_SUCCESSFULLY:
                    raise RuntimeError(f"the first page did not finish (status {fm.script_finished})")
                return


def cpu_seconds(pid: int) -> float | None:
    """CPU-seconds a process has used (Linux's /proc), None where that cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def until_quiet(pids: list[int], timeout: float, stopping=lambda: False, quiet_s: float = 8.0) -> None:
    """Wait (at most ``timeout`` s) until the processes together use under 5% of a core for ``quiet_s``
    seconds: the warm-up threads started by ``warm`` are done (UMAP's waits for 5 s without a page start)."""
    t0 = last_busy = time.monotonic()
    before = [cpu_seconds(p) for p in pids]
    while not stopping() and time.monotonic() - t0 < timeout and time.monotonic() - last_busy < quiet_s:
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
    p.add_argument("--address", default="127.0.0.1", help="the IPv4 address students connect to (default: 127.0.0.1; "
                   "0.0.0.0 for a room on the network)")
    p.add_argument("--port", type=int, default=8501, help="the students' port (default: 8501)")
    p.add_argument("--processes", type=int, default=1,
                   help=f"Streamlit processes of the app (default: 1; 1 to {MAX_PROCESSES}); each runs its own job pool")
    p.add_argument("--job-workers", type=int, default=None, metavar="N",
                   help="training workers per app process (default: the cores divided among the processes, at least 1)")
    p.add_argument("--ray-address", default=None, help="train every process's jobs on this Ray cluster instead")
    p.add_argument("--start-timeout", type=float, default=180.0,
                   help="seconds each app process may take to start and to warm up (default: 180)")
    a = p.parse_args(argv)
    try:
        IPv4Address(a.address)
    except ValueError:
        p.error(f"--address must be an IPv4 address such as 0.0.0.0 or 127.0.0.1, got {a.address!r}")
    if not 1 <= a.processes <= MAX_PROCESSES:
        p.error(f"--processes must be from 1 to {MAX_PROCESSES}, got {a.processes}")
    if not 1 <= a.port <= 65535:
        p.error(f"--port must be from 1 to 65535, got {a.port}")
    if a.job_workers is not None and not 1 <= a.job_workers <= 256:
        p.error(f"--job-workers must be from 1 to 256, got {a.job_workers}")
    if not 1 <= a.start_timeout <= 3600:
        p.error(f"--start-timeout must be from 1 to 3600 seconds, got {a.start_timeout:g}")
    if a.job_workers is None:
        a.job_workers = max(1, cores // a.processes)
    return a


def room_urls(port: int) -> list[str]:
    """The addresses other machines can use: this host's name and its address on the network of the
    default route (found by a UDP socket's connect, which sends nothing)."""
    urls = [f"http://{socket.gethostname()}:{port}"]
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))
            ip = s.getsockname()[0]
        if not ip.startswith("127."):
            urls.append(f"http://{ip}:{port}")
    except OSError:  # no network: the host name only
        pass
    return urls


def nginx_version(nginx: str) -> tuple[int, ...]:
    done = subprocess.run([nginx, "-v"], capture_output=True, text=True, timeout=30)
    text = done.stderr + done.stdout  # "nginx version: nginx/1.22.1"
    try:
        return tuple(int(x) for x in text.split("nginx/", 1)[1].split()[0].split("."))
    except (IndexError, ValueError):
        return (0,)


def nginx_command(nginx: str, run_dir: str, *extra: str) -> list[str]:
    cmd = [nginx, "-p", run_dir, "-c", os.path.join(run_dir, "nginx.conf"), *extra]
    if nginx_version(nginx) >= (1, 19, 5):  # -e: no message to the compiled-in log, which a user cannot write
        cmd[1:1] = ["-e", os.path.join(run_dir, "error.log")]
    return cmd


def die_with_parent() -> None:
    """In a child before exec: SIGTERM when this command dies (Linux's PR_SET_PDEATHSIG), so a
    ``kill -9`` of the command leaves no app process or nginx behind."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux
        pass


def start(cmd: list[str], log: str, **kw) -> subprocess.Popen:
    """A child in its own process group (a Ctrl-C in the terminal reaches this command only, which stops
    the children in order), its output in ``log``."""
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=die_with_parent if sys.platform.startswith("linux") else None, **kw)


def stop(procs: list[subprocess.Popen], timeout: float = 30.0) -> None:
    """SIGTERM to each in turn (nginx first: no request reaches a stopping app process), then whatever is
    left of each one's process group (the job workers, nginx's worker) is killed."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):  # the group is empty: all gone
            pass


def tail(path: str, n: int = 600) -> str:
    try:
        with open(path, "rb") as f:
            return f.read()[-n:].decode("utf-8", "replace").strip() or "(empty)"
    except OSError:
        return "(none)"


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    nginx = find_nginx()
    if nginx is None:
        sys.exit("mmvae workshop: nginx is not installed (Debian/Ubuntu: sudo apt-get install -y nginx); "
                 "'mmvae app' runs the app as one process without it")
    if not port_is_free(args.address, args.port):
        sys.exit(f"mmvae workshop: {args.address}:{args.port} is in use; choose another --port")
    for var in ("no_proxy", "NO_PROXY"):  # our own requests to 127.0.0.1 (health, warm-up) never go through a proxy
        os.environ[var] = ",".join(x for x in ("127.0.0.1", "localhost", os.environ.get(var)) if x)
    # run as root, nginx's worker is another user: it must reach the folder (so not under root's TMPDIR)
    run_dir = tempfile.mkdtemp(prefix="mmvae-workshop-", dir="/tmp" if os.geteuid() == 0 else None)
    procs: list[subprocess.Popen] = []
    stopping: list[int] = []
    ready = failed = False

    def on_signal(signum, frame) -> None:
        stopping.append(signum)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        raw, packed = precompress(streamlit_static(), run_dir)
        for folder, dirs, files in os.walk(run_dir):  # readable by nginx's worker whatever the umask
            os.chmod(folder, 0o755)
            for name in files:
                os.chmod(os.path.join(folder, name), 0o644)
        ports: list[int] = []
        for _ in range(args.processes):
            ports.append(free_port(avoid={args.port, *ports}))
        with open(os.path.join(run_dir, "nginx.conf"), "w") as f:
            f.write(nginx_config(args.address, args.port, ports, run_dir, run_dir))
        check = subprocess.run(nginx_command(nginx, run_dir, "-t"), capture_output=True, text=True, timeout=60)
        if check.returncode != 0:
            raise RuntimeError(f"nginx refuses the configuration: {(check.stderr or check.stdout).strip()[-600:]}")
        env = dict(os.environ, OMP_NUM_THREADS="1", MMVAE_JOB_WORKERS=str(args.job_workers))
        if args.ray_address:
            env["MMVAE_RAY_ADDRESS"] = args.ray_address
        for i, port in enumerate(ports):
            if stopping:
                break
            procs.append(start([sys.executable, "-m", "streamlit", "run", SCRIPT, "--server.address", "127.0.0.1",
                                "--server.port", str(port), "--server.headless", "true",
                                "--browser.gatherUsageStats", "false"],
                               os.path.join(run_dir, f"app-{i}.log"), cwd=ROOT, env=env))
        t0 = time.monotonic()
        waiting = set(range(len(procs)))
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
        if not stopping:
            print(f"mmvae workshop: {args.processes} app process(es) started; warming them up (first page, torch, "
                  "UMAP)", flush=True)
        for i, port in enumerate(ports):
            if stopping:
                break
            try:
                warm(port, args.start_timeout, lambda: bool(stopping))
            except Exception as e:  # noqa: BLE001 - websockets' errors: reported as this command's error
                raise RuntimeError(f"app process {i} failed its first page ({type(e).__name__}: {e}); its log: "
                                   f"{tail(os.path.join(run_dir, f'app-{i}.log'))}") from e
        until_quiet([p.pid for p in procs], args.start_timeout, lambda: bool(stopping))
        if not stopping:
            procs.append(start(nginx_command(nginx, run_dir), os.path.join(run_dir, "nginx.log")))
        url = f"http://{'127.0.0.1' if args.address == '0.0.0.0' else args.address}:{args.port}"
        t0 = time.monotonic()
        while not stopping and not healthy(url + "/_stcore/health"):
            if procs[-1].poll() is not None:
                raise RuntimeError(f"nginx stopped (exit status {procs[-1].returncode}): "
                                   f"{tail(os.path.join(run_dir, 'error.log'))} {tail(os.path.join(run_dir, 'nginx.log'))}")
            if time.monotonic() - t0 > 60:
                raise RuntimeError(f"nginx did not answer on {url} within 60 s")
            time.sleep(0.1)
        if not stopping:
            ready = True
            if args.address == "0.0.0.0":  # 127.0.0.1 is this machine only: say what the room opens
                print(f"mmvae workshop: listening on every network interface; students open "
                      f"{' or '.join(room_urls(args.port))}", flush=True)
            print(f"mmvae workshop: {url} ({args.processes} app process(es), {args.job_workers} training worker(s) "
                  f"each; frontend files {raw / 1e6:.1f} MB, {packed / 1e6:.1f} MB compressed, sent by nginx; logs in "
                  f"the run folder {run_dir}). Ctrl-C stops it.", flush=True)
        while not stopping:
            for i, p in enumerate(procs):
                if p.poll() is not None:
                    log = "error.log" if i == len(procs) - 1 else f"app-{i}.log"
                    what = "nginx" if i == len(procs) - 1 else f"app process {i}"
                    raise RuntimeError(f"{what} stopped (exit status {p.returncode}); stopping the others. Its log: "
                                       f"{tail(os.path.join(run_dir, log))}")
            time.sleep(0.5)
        return 0 if ready else 130  # stopped before it was ready: as an interrupted command
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:  # a full disk, nginx -t hanging, ...: one line
        failed = True
        print(f"mmvae workshop: {e}", file=sys.stderr, flush=True)
        return 1
    finally:
        stop(procs[::-1])
        for s, h in old.items():
            signal.signal(s, h)
        if failed and procs:  # something ran: its logs are what the user needs
            print(f"mmvae workshop: the logs stay in {run_dir}", file=sys.stderr, flush=True)
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
            apps = sum(p.args[0] == sys.executable for p in procs)
            print(f"mmvae workshop: stopped {'nginx and ' if len(procs) > apps else ''}{apps} app process(es); "
                  "run folder removed", flush=True)


if __name__ == "__main__":
    sys.exit(main())
