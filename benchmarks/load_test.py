"""A workshop room against one app server: N students at once, each in its own Chromium context.

    python benchmarks/load_test.py                 # 10, 20 and 30 students
    python benchmarks/load_test.py --levels 30 --deadline 240

Starts the app on 127.0.0.1 (a free port), one Chromium (/usr/bin/chromium, the args of
tests/app_server.py) and, per level, N browser contexts that at the same moment each: open the
app with their own ``?seed=`` (so each trains a different model), wait for the first chart, press
Play on the default toy setup, wait until the Train page says the training is done, check that the
sidebar shows *their* model (their seed, "trained in this session"), then open Latent embeddings
and check it again. Prints per level: p50 / p95 of the time to the first chart, of the queue wait
(Play until the page says "training"; the page polls a queued job every 1.5 s, so this is within
about 1.5 s), of the time from Play to finished training, the errors, and the server's RSS (the Streamlit
process, and with its job workers) while the N sessions are open. Bounded: at most 30 students
per level and ``--deadline`` seconds per student.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.app_server import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402

MAX_STUDENTS = 30


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


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


def start_server(port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "streamlit", "run", "app/streamlit_app.py", "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise TimeoutError("the app did not start within 60 s")


async def student(browser, url: str, seed: int, deadline_s: float, start: asyncio.Event) -> dict:
    out: dict = {"seed": seed, "errors": []}
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.on("pageerror", lambda e: out["errors"].append(f"pageerror: {e}"))
    ms = int(deadline_s * 1000)
    try:
        await start.wait()
        t0 = time.monotonic()
        await page.goto(f"{url}/?seed={seed}", timeout=ms)
        await page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 1",
                                     timeout=ms)
        out["first_chart_s"] = time.monotonic() - t0
        play = page.get_by_role("button", name="Play")
        await play.wait_for(timeout=ms)
        await page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')"
                                     " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText",
                                     timeout=ms)
        await play.click()
        t_play = time.monotonic()
        await page.get_by_text("(training").or_(page.get_by_text("(done)")).first.wait_for(timeout=ms)
        out["queue_wait_s"] = time.monotonic() - t_play
        await page.get_by_text("(done)").first.wait_for(timeout=ms)
        out["trained_s"] = time.monotonic() - t_play
        for where in ("Train", "Latent embeddings"):
            if where != "Train":
                await page.get_by_test_id("stSidebarNav").get_by_text(where, exact=True).click()
                await page.wait_for_function("document.querySelector('h1') && "
                                             "document.querySelector('h1').innerText.includes('Latent')", timeout=ms)
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


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


async def level(browser, url: str, n: int, deadline_s: float, server_pid: int) -> dict:
    start = asyncio.Event()
    tasks = [asyncio.create_task(student(browser, url, 1000 + i, deadline_s, start)) for i in range(n)]
    await asyncio.sleep(0.5)
    start.set()
    results = await asyncio.gather(*tasks)
    server = rss_mb(server_pid)
    total = server + sum(rss_mb(k) for k in descendants(server_pid))
    for r in results:
        await r.pop("context").close()
    get = lambda k: [r[k] for r in results if k in r]  # noqa: E731
    return {"n": n, "first_chart": get("first_chart_s"), "queue_wait": get("queue_wait_s"),
            "trained": get("trained_s"), "errors": [e for r in results for e in r["errors"]],
            "rss_server_mb": server, "rss_total_mb": total}


async def main_async(args) -> None:
    from playwright.async_api import async_playwright

    port = free_port()
    proc = start_server(port)
    url = f"http://127.0.0.1:{port}"
    rows = []
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for n in args.levels:
                    r = await level(browser, url, min(n, MAX_STUDENTS), args.deadline, proc.pid)
                    rows.append(r)
                    print(f"{r['n']} students: first chart p50 {pct(r['first_chart'], .5):.1f} s, p95 "
                          f"{pct(r['first_chart'], .95):.1f} s; queue wait p50 {pct(r['queue_wait'], .5):.1f} s, p95 "
                          f"{pct(r['queue_wait'], .95):.1f} s; Play to trained p50 {pct(r['trained'], .5):.1f} s, "
                          f"p95 {pct(r['trained'], .95):.1f} s, max {max(r['trained'], default=float('nan')):.1f} s; "
                          f"errors {len(r['errors'])}; server RSS {r['rss_server_mb']:.0f} MB "
                          f"({r['rss_total_mb']:.0f} MB with the job workers)", flush=True)
                    for e in r["errors"][:5]:
                        print("   ", e, flush=True)
            finally:
                await browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    print("\n| students | first chart p50 / p95 | queue wait p50 / p95 | Play to trained p50 / p95 / max | errors "
          "| server RSS (with workers) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']} | {pct(r['first_chart'], .5):.1f} / {pct(r['first_chart'], .95):.1f} s "
              f"| {pct(r['queue_wait'], .5):.1f} / {pct(r['queue_wait'], .95):.1f} s "
              f"| {pct(r['trained'], .5):.1f} / {pct(r['trained'], .95):.1f} / "
              f"{max(r['trained'], default=float('nan')):.1f} s | {len(r['errors'])} "
              f"| {r['rss_server_mb']:.0f} MB ({r['rss_total_mb']:.0f} MB) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[10, 20, 30],
                        help=f"students per level (each at most {MAX_STUDENTS})")
    parser.add_argument("--deadline", type=float, default=180.0, help="seconds each student may wait per step")
    args = parser.parse_args()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
