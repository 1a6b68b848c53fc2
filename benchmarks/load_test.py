"""A workshop room against one app server: N students at once, each in its own Chromium context.

    python benchmarks/load_test.py                 # 10, 20 and 30 students
    python benchmarks/load_test.py --levels 30 --deadline 240 --arrival-spread 60
    python benchmarks/load_test.py --workshop 1    # the app served by mmvae workshop (nginx in front)

Starts the app on 127.0.0.1 (a free port; with ``--workshop N``, ``mmvae workshop --processes N``) and one Chromium (/usr/bin/chromium, the args of
tests/app_server.py). First a teacher opens the app and the server finishes warming up (``--cold``
skips this). Then, per level, N browser contexts that each: open the app with their own
``?seed=`` (so each trains a different model), wait for the first chart, press Play on the
default toy setup, wait until the Train page says the training is done, check that the sidebar
shows *their* model (their seed, "trained in this session"), then open Latent embeddings and
check it again. With ``--arrival-spread S`` every level runs twice: all at once, then with the
students arriving evenly over S seconds (its own row).

Prints per level: p50 / p95 of the time to the first chart (from the student's own arrival), of
the queue wait (Play until the page says "training"; the page polls a queued job every 1.5 s, so
this is within about 1.5 s), of the time from Play to finished training; the errors; the
CPU-seconds per student of the Streamlit server process, of its job workers, of Chromium (all its
processes) and of Playwright's driver (from /proc/PID/stat: unlike wall-clock times, these do not
grow when other work loads the machine); the load average at the level's start and end; the
server's RSS (the Streamlit process, and with its job workers). Chromium runs on the server's 2
cores here, where in a workshop each student's browser runs on their own laptop: compare its
CPU-seconds with the server's. ``--profile FILE`` records the server with py-spy. Bounded: at
most 30 students per level and ``--deadline`` seconds per student and step.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.app_server import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402

MAX_STUDENTS = 30
POLL_MS = 100  # the harness checks the page every 100 ms (Playwright's default polls on every animation frame,
# which keeps each renderer drawing frames and costs CPU the server shares here)


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:  # gone
        pass
    return 0.0


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU-seconds of one process (all its threads) so far, from /proc/PID/stat;
    0 when it is gone. Load-robust: CPU time does not grow when other work slows the clock."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15 of proc(5))


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def descendants(pid: int) -> list[int]:
    out = []
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(k) for k in f.read().split()]
    except OSError:
        return out
    for k in kids:
        out += [k] + descendants(k)
    return out


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def server_processes(root: int) -> set[int]:
    """The processes that serve pages: the Streamlit server ``root``; for a workshop server
    (app/workshop.py) ``root`` is its launcher and these are its app processes and nginx's. Every
    other descendant of ``root`` is a job worker (or multiprocessing's helper)."""
    out = {root}
    for pid in descendants(root):
        if comm(pid) == "nginx" or " -m streamlit run " in cmdline(pid):
            out.add(pid)
    return out


def start_profile(pid: int, path: str, subprocesses: bool = False) -> subprocess.Popen:
    """py-spy samples the process's Python stacks (the thread holding the GIL) into ``path``, collapsed
    stacks; with ``subprocesses`` those of every process under it too (a workshop server's app processes)."""
    return subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--output", path, "--format", "raw", "--rate",
                             "50", "--gil", *(["--subprocesses"] if subprocesses else [])],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profile(spy) -> None:
    if spy is None:
        return
    spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
    try:
        spy.wait(timeout=30)
    except subprocess.TimeoutExpired:
        spy.kill()


def start_server(port: int, workshop: int = 0) -> subprocess.Popen:
    """The app on 127.0.0.1:``port``: one Streamlit process, or with ``workshop`` = N a workshop server
    (app/workshop.py: nginx in front of N app processes)."""
    if workshop:
        cmd = [sys.executable, "app/workshop.py", "--port", str(port), "--processes", str(workshop)]
    else:
        cmd = [sys.executable, "-m", "streamlit", "run", "app/streamlit_app.py", "--server.headless", "true",
               "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    limit = 420 if workshop else 120  # a workshop server answers once every app process has warmed up
    while time.monotonic() - t0 < limit and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    if proc.poll() is not None:
        raise RuntimeError(f"the app stopped while starting (exit status {proc.returncode}): {' '.join(cmd)}")
    proc.terminate()  # a workshop launcher stops its app processes and nginx on SIGTERM
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    raise TimeoutError(f"the app did not start within {limit} s")


def cpu_snapshot(server_pid: int) -> dict:
    """CPU-seconds so far per process, grouped: the Streamlit server process (a workshop server's app
    processes and nginx), the other processes under it (the job workers and the multiprocessing manager),
    Chromium (every process of the browser this script launched) and Playwright's driver."""
    server_tree, pages = {server_pid, *descendants(server_pid)}, server_processes(server_pid)
    groups: dict = {"server": {pid: cpu_s(pid) for pid in pages}, "workers": {}, "chromium": {}, "driver": {}}
    for pid in server_tree - pages:
        groups["workers"][pid] = cpu_s(pid)
    for pid in set(descendants(os.getpid())) - server_tree:
        groups["chromium" if comm(pid).startswith("chrom") else "driver"][pid] = cpu_s(pid)
    return groups


def server_cpu_s(server_pid: int) -> float:
    """CPU-seconds of the processes that serve pages (``server_processes``)."""
    return sum(cpu_s(pid) for pid in server_processes(server_pid))


def rss_split(server_pid: int) -> tuple[float, float]:
    """Resident MB of the processes that serve pages (``server_processes``), and of the whole tree."""
    pages = server_processes(server_pid)
    server = sum(rss_mb(k) for k in pages)
    return server, server + sum(rss_mb(k) for k in descendants(server_pid) if k not in pages)


def cpu_delta(before: dict, after: dict) -> dict:
    """CPU-seconds used between two snapshots per group (a process that ended in between is not
    counted: the numbers are lower bounds)."""
    return {g: sum(v - before[g].get(pid, 0.0) for pid, v in after[g].items()) for g in after}


def load_avg() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


async def student(browser, url: str, seed: int, deadline_s: float, start: asyncio.Event, delay_s: float = 0.0,
                  on_first_chart=lambda: None) -> dict:
    out: dict = {"seed": seed, "errors": []}
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.on("pageerror", lambda e: out["errors"].append(f"pageerror: {e}"))
    ms = int(deadline_s * 1000)
    try:
        await start.wait()
        await asyncio.sleep(delay_s)  # this student's arrival (0 when all arrive at once)
        t0 = time.monotonic()
        await page.goto(f"{url}/?seed={seed}", timeout=ms)
        await page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 1",
                                     timeout=ms, polling=POLL_MS)
        out["first_chart_s"] = time.monotonic() - t0
        on_first_chart()
        play = page.get_by_role("button", name="Play")
        await play.wait_for(timeout=ms)
        await page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')"
                                     " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText",
                                     timeout=ms, polling=POLL_MS)
        await play.click(timeout=ms)
        t_play = time.monotonic()
        await page.get_by_text("(training").or_(page.get_by_text("(done)")).first.wait_for(timeout=ms)
        out["queue_wait_s"] = time.monotonic() - t_play
        await page.get_by_text("(done)").first.wait_for(timeout=ms)
        out["trained_s"] = time.monotonic() - t_play
        for where in ("Train", "Latent embeddings"):
            if where != "Train":
                await page.get_by_test_id("stSidebarNav").get_by_text(where, exact=True).click(timeout=ms)
                await page.wait_for_function("document.querySelector('h1') && "
                                             "document.querySelector('h1').innerText.includes('Latent')", timeout=ms,
                                             polling=POLL_MS)
            side = page.get_by_test_id("stSidebar")
            await side.get_by_text("trained in this session").wait_for(timeout=ms)
            text = await side.inner_text()
            if f"seed {seed} " not in text and not text.rstrip().endswith(f"seed {seed}"):
                out["errors"].append(f"{where}: sidebar shows another model: {text[-200:]!r}")
        if await page.locator("[data-testid='stException']").count():
            out["errors"].append("exception box")
    except Exception as e:  # noqa: BLE001 - a timeout or a crash is this student's error
        out["errors"].append(f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
    out["context"] = context
    return out


async def teacher(browser, url: str, server_pid: int, deadline_s: float) -> tuple[float, float]:
    """Before the room: the teacher opens the app once (the server imports torch, warms its job
    workers and, once no page has run for a few seconds, compiles UMAP: app/warmup.py), then waits
    until the server and its workers have been idle for 10 s (under 10% of a core; at most
    ``deadline_s``): the room meets a started server, as in a workshop. Returns (seconds, server
    CPU-seconds) it took."""
    cpu0, t0 = server_cpu_s(server_pid), time.monotonic()
    page = await browser.new_page()
    await page.goto(url, timeout=int(deadline_s * 1000))
    await page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 1",
                                 timeout=int(deadline_s * 1000), polling=POLL_MS)
    await page.close()
    await until_idle(server_pid, t0, deadline_s)
    return time.monotonic() - t0, server_cpu_s(server_pid) - cpu0


async def until_idle(server_pid: int, t0: float, deadline_s: float) -> None:
    """Wait until the server and its workers have used under 10% of a core for 10 s (five 2-s
    windows in a row), or until ``deadline_s`` after ``t0``."""
    idle = 0
    while idle < 5 and time.monotonic() - t0 < deadline_s:
        busy0 = cpu_s(server_pid) + sum(cpu_s(k) for k in descendants(server_pid))
        await asyncio.sleep(2.0)
        busy = cpu_s(server_pid) + sum(cpu_s(k) for k in descendants(server_pid)) - busy0
        idle = idle + 1 if busy < 0.2 else 0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


async def level(browser, url: str, n: int, deadline_s: float, server_pid: int, spread_s: float = 0.0,
                seed0: int = 1000) -> dict:
    """N students; with ``spread_s`` > 0 they arrive evenly over that many seconds (student i after
    i * spread_s / N), else all at once."""
    start = asyncio.Event()
    charts: list = []  # first charts so far; when all N are in: the server's and Chromium's CPU until then

    def on_first_chart() -> None:
        charts.append(None)
        if len(charts) == n:
            first.update(cpu_delta(cpu0, cpu_snapshot(server_pid)))

    first: dict = {}
    tasks = [asyncio.create_task(student(browser, url, seed0 + i, deadline_s, start, i * spread_s / n,
                                         on_first_chart)) for i in range(n)]
    await asyncio.sleep(0.5)
    load0, cpu0, t0 = load_avg(), cpu_snapshot(server_pid), time.monotonic()
    start.set()
    results = await asyncio.gather(*tasks)
    wall = time.monotonic() - t0
    cpu = cpu_delta(cpu0, cpu_snapshot(server_pid))  # before the contexts close (their renderers end)
    load1 = load_avg()
    server, total = rss_split(server_pid)
    for r in results:
        await r.pop("context").close()
    get = lambda k: [r[k] for r in results if k in r]  # noqa: E731
    return {"n": n, "spread": spread_s, "first_chart": get("first_chart_s"), "queue_wait": get("queue_wait_s"),
            "trained": get("trained_s"), "errors": [e for r in results for e in r["errors"]],
            "rss_server_mb": server, "rss_total_mb": total, "cpu": cpu, "cpu_first": first, "wall_s": wall,
            "load": (load0, load1)}


def label(r: dict) -> str:
    return f"{r['n']}" + (f" over {r['spread']:.0f} s" if r["spread"] else " at once")


def first_cpu(r: dict, group: str) -> str:
    """CPU-s per student from the level's start until every student had their first chart (the
    later steps of the students who were first are included: an upper bound)."""
    return f"{r['cpu_first'][group] / r['n']:.2f}" if r["cpu_first"] else "n/a"


def summary(r: dict) -> str:
    n, c = r["n"], r["cpu"]
    return (f"{label(r)}: first chart p50 {pct(r['first_chart'], .5):.1f} s, p95 {pct(r['first_chart'], .95):.1f} s; "
            f"queue wait p50 {pct(r['queue_wait'], .5):.1f} s, p95 {pct(r['queue_wait'], .95):.1f} s; Play to "
            f"trained p50 {pct(r['trained'], .5):.1f} s, p95 {pct(r['trained'], .95):.1f} s, max "
            f"{max(r['trained'], default=float('nan')):.1f} s ({len(r['trained'])} of {n} trained); errors "
            f"{len(r['errors'])}; CPU-s per student: server {c['server'] / n:.2f}, job workers {c['workers'] / n:.2f}, "
            f"Chromium {c['chromium'] / n:.2f}, Playwright {c['driver'] / n:.2f} (level took {r['wall_s']:.0f} s); "
            f"until the last first chart: server {first_cpu(r, 'server')}, Chromium {first_cpu(r, 'chromium')}; "
            f"load average {r['load'][0]:.1f} -> {r['load'][1]:.1f}; server RSS {r['rss_server_mb']:.0f} MB "
            f"({r['rss_total_mb']:.0f} MB with the job workers)")


async def main_async(args) -> None:
    from playwright.async_api import async_playwright

    port = free_port()
    proc = start_server(port, args.workshop)
    url = f"http://127.0.0.1:{port}"
    rows = []
    spy = start_profile(proc.pid, args.profile, bool(args.workshop)) if args.profile else None
    print(f"load average at start: {load_avg():.2f} ({os.cpu_count()} CPUs); Chromium at niceness {args.browser_nice}, "
          f"job workers at {os.environ.get('MMVAE_JOB_NICE', 10)}", flush=True)
    if args.browser_nice:  # Playwright's driver and Chromium inherit this process's niceness; the server started above
        os.nice(args.browser_nice)
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                if not args.cold:
                    took, cpu = await teacher(browser, url, proc.pid, args.deadline)
                    print(f"teacher's first page and the server's warm-up: {took:.0f} s, {cpu:.1f} server CPU-s; "
                          f"load average {load_avg():.2f}", flush=True)
                seed0 = 1000
                for n in args.levels:
                    for spread in [0.0] + ([args.arrival_spread] if args.arrival_spread else []):
                        # every run its own seeds: a fresh model per student, never one trained before
                        r = await level(browser, url, min(n, MAX_STUDENTS), args.deadline, proc.pid, spread, seed0)
                        seed0 += MAX_STUDENTS
                        rows.append(r)
                        print(summary(r), flush=True)
                        kinds = {}  # each kind of error once, with how often it happened
                        for e in r["errors"]:
                            kinds[e[:120]] = kinds.get(e[:120], 0) + 1
                        for e, count in kinds.items():
                            print(f"    {count} x {e}", flush=True)
            finally:
                await browser.close()
    finally:
        stop_profile(spy)
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    print("\n| students | first chart p50 / p95 | queue wait p50 / p95 | Play to trained p50 / p95 / max | errors "
          "| CPU-s per student: server / job workers / Chromium (until the last first chart: server / Chromium) "
          "| load average (1 min) | server RSS (with workers) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        n, c = r["n"], r["cpu"]
        print(f"| {label(r)} | {pct(r['first_chart'], .5):.1f} / {pct(r['first_chart'], .95):.1f} s "
              f"| {pct(r['queue_wait'], .5):.1f} / {pct(r['queue_wait'], .95):.1f} s "
              f"| {pct(r['trained'], .5):.1f} / {pct(r['trained'], .95):.1f} / "
              f"{max(r['trained'], default=float('nan')):.1f} s ({len(r['trained'])} of {n}) | {len(r['errors'])} "
              f"| {c['server'] / n:.2f} / {c['workers'] / n:.2f} / {c['chromium'] / n:.2f} "
              f"({first_cpu(r, 'server')} / {first_cpu(r, 'chromium')}) "
              f"| {r['load'][0]:.1f} -> {r['load'][1]:.1f} "
              f"| {r['rss_server_mb']:.0f} MB ({r['rss_total_mb']:.0f} MB) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[10, 20, 30],
                        help=f"students per level (each at most {MAX_STUDENTS})")
    parser.add_argument("--deadline", type=float, default=180.0, help="seconds each student may wait per step")
    parser.add_argument("--arrival-spread", type=float, default=0.0, metavar="SECONDS",
                        help="also run each level with the students arriving evenly over SECONDS (reported as its "
                             "own row, after the all-at-once row)")
    parser.add_argument("--cold", action="store_true",
                        help="the first level meets a server that just started (default: a teacher opens the app "
                             "first and the server finishes warming up before the students arrive)")
    parser.add_argument("--browser-nice", type=int, default=0, metavar="N",
                        help="run Playwright and Chromium at niceness N (the server stays at 0): closer to a room, "
                             "where the browsers run on the students' own machines")
    parser.add_argument("--workshop", type=int, default=0, metavar="N",
                        help="serve the app as a workshop server: nginx in front of N app processes (app/workshop.py)")
    parser.add_argument("--profile", metavar="FILE", help="record the server process with py-spy (pip install "
                        "py-spy) into FILE (collapsed stacks: one line per stack with its sample count)")
    args = parser.parse_args()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
