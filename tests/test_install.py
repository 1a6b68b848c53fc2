"""First contact (issue #15): README.md's set-up commands build a fresh virtual environment from the
repository's files, README.md's start command starts the app, and Chromium shows the first chart.

The commands are read from README.md (tests/readme_commands.py), so the README is what runs. The
slow test copies the tracked files to a temporary directory (the checkout under test gets no
.venv), keeps pip's cache (a repeat takes a minute or two), and removes everything afterwards.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

from mmvae import cli
from tests.app_server import CHROMIUM, ROOT, free_port, launch, wait_for_charts
from tests.readme_commands import section_commands

SETUP_TIMEOUT_S = 1200   # both set-up commands together; ~1-3 min here with pip's cache
SERVER_TIMEOUT_S = 180   # start command -> health check answers
CHART_TIMEOUT_MS = 180_000


# ----------------------------------------------------------------------------- fast checks
def test_readme_sections_hold_the_commands_ci_runs():
    setup = section_commands("Set up")
    assert len(setup) == 2, setup  # the README promises two commands
    assert any(c.startswith("python3 -m venv .venv") and 'pip install -e ".[test]"' in c for c in setup), setup
    assert section_commands("Start the app") == [".venv/bin/mmvae app"]
    assert section_commands("Run the tests") == [".venv/bin/python -m pytest"]


def test_section_commands_joins_continuations_and_rejects_missing_sections(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n## Set up (two)\n\ntext\n\n```bash\n# a comment\necho a \\\n  b\n\necho c\n```\n\n"
                      "## Empty\n\nno block\n\n## Later\n\n```bash\necho d\n```\n")
    assert section_commands("Set up", str(readme)) == ["echo a b", "echo c"]
    with pytest.raises(ValueError, match="no complete"):
        section_commands("Empty", str(readme))  # never borrows the next section's block
    with pytest.raises(ValueError, match="no section"):
        section_commands("Missing", str(readme))


class _Exec(BaseException):  # not an Exception: the CLI turns those into one-line errors
    """Raised by the stand-in for os.execv: the command `mmvae app` would become."""


def _fake_execv(path, argv):
    raise _Exec(path, list(argv))


@pytest.mark.skipif(os.name != "posix", reason="mmvae app execs the server on POSIX")
def test_mmvae_app_runs_streamlit_on_the_checkout_script_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "execv", _fake_execv)
    with pytest.raises(_Exec) as got:
        cli.main(["app", "--server.port", "8599", "--server.address", "127.0.0.1"])
    path, argv = got.value.args
    assert path == sys.executable
    assert argv[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert os.path.isabs(argv[4]) and os.path.samefile(argv[4], os.path.join(ROOT, "app", "streamlit_app.py"))
    assert argv[5:] == ["--server.port", "8599", "--server.address", "127.0.0.1"]  # passed on untouched
    with pytest.raises(_Exec) as got:
        cli.main(["app", "--help"])  # Streamlit's help, not argparse's
    assert got.value.args[1][5:] == ["--help"]


def test_mmvae_app_without_a_checkout_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    # as after a non-editable install: mmvae/ in site-packages, no app/ beside it
    monkeypatch.setattr(cli, "__file__", str(tmp_path / "site-packages" / "mmvae" / "cli.py"))
    monkeypatch.setattr(os, "execv", _fake_execv)
    assert cli.main(["app"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mmvae: error: the app is not part of the installed package") and err.count("\n") == 1


# ----------------------------------------------------------------------------- the real thing
def _repository_copy(dest: str) -> None:
    """The repository's files (tracked, plus new ones git does not ignore) copied to ``dest``."""
    listed = subprocess.run(["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = os.path.join(ROOT, rel)
        if os.path.isfile(src):  # a tracked file deleted in the work tree is not part of it
            os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
            shutil.copy2(src, os.path.join(dest, rel))


def _newcomer_env() -> dict[str, str]:
    """This environment without the virtual environment (if any) that runs the tests."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    venv = os.environ.get("VIRTUAL_ENV")
    if venv:
        env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                      if os.path.abspath(p) != os.path.join(os.path.abspath(venv), "bin"))
    env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def _apt_needed() -> bool:
    ensurepip = subprocess.run(["python3", "-c", "import ensurepip, venv"], capture_output=True).returncode == 0
    nginx = any(os.access(p, os.X_OK) for p in ("/usr/sbin/nginx", "/usr/bin/nginx"))  # the workshop server
    return not (os.path.exists(CHROMIUM) and ensurepip and nginx)


def _run(command: str, cwd: str, env: dict, deadline: float) -> None:
    if "apt-get" in command and os.geteuid() == 0 and shutil.which("sudo") is None:
        command = 'sudo() { "$@"; }; ' + command  # root without sudo, as in .ci/run
    try:
        done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pytest.fail(f"README set-up command did not finish within {SETUP_TIMEOUT_S} s: {command}")
    assert done.returncode == 0, f"README set-up command failed ({done.returncode}): {command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def _wait_healthy(proc: subprocess.Popen, url: str, log: str) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < SERVER_TIMEOUT_S:
        if proc.poll() is not None:
            with open(log, errors="replace") as f:
                out = f.read()
            pytest.fail(f"the README's start command exited with {proc.returncode}:\n{out[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"the app did not answer within {SERVER_TIMEOUT_S} s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and anything it started
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.install
@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="the README's commands are for a POSIX shell")
def test_readme_setup_in_a_fresh_copy_then_the_app_shows_its_first_chart():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing")
    if shutil.which("git") is None or not os.path.exists(os.path.join(ROOT, ".git")):
        pytest.skip("needs a git checkout (the copy is the files git lists)")
    sync_api = pytest.importorskip("playwright.sync_api")
    setup, start = section_commands("Set up"), section_commands("Start the app")
    work = tempfile.mkdtemp(prefix="mmvae-first-contact-")
    try:
        repo = os.path.join(work, "mmvae")
        _repository_copy(repo)
        env = _newcomer_env()
        deadline = time.monotonic() + SETUP_TIMEOUT_S
        for command in setup:
            if "apt-get" in command and not _apt_needed():
                continue  # Chromium and venv are there: the line would change nothing
            if "apt-get" in command and os.geteuid() != 0 and shutil.which("sudo") is None:
                pytest.skip("the README's apt-get line is needed here but cannot run (not root, no sudo)")
            _run(command, repo, env, deadline)
        venv_python = os.path.join(repo, ".venv", "bin", "python")
        elsewhere = os.path.join(work, "elsewhere")  # not the checkout: the installed package answers
        os.makedirs(elsewhere)
        where = subprocess.run([venv_python, "-c", "import mmvae, torch, streamlit; print(mmvae.__file__)"],
                               capture_output=True, text=True, env=env, cwd=elsewhere, timeout=300)
        assert where.returncode == 0, where.stderr[-2000:]
        assert os.path.realpath(where.stdout.strip()).startswith(os.path.realpath(repo)), where.stdout  # editable copy

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = (f"exec {start[0]} --server.headless true --server.port {port} --server.address 127.0.0.1 "
                   "--browser.gatherUsageStats false")
        log = os.path.join(work, "app.log")
        with open(log, "w") as out:  # a file, not a pipe nobody reads: the server never blocks on it
            proc = subprocess.Popen(["bash", "-c", command], cwd=repo, env=env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait_healthy(proc, url, log)
            with sync_api.sync_playwright() as p:
                browser = launch(p)
                try:
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    errors: list[str] = []
                    page.on("pageerror", lambda e: errors.append(str(e)))
                    page.goto(url)
                    wait_for_charts(page, timeout_ms=CHART_TIMEOUT_MS)  # the first screen's curves
                    assert page.locator("[data-testid='stException']").count() == 0
                    assert not errors, errors
                finally:
                    browser.close()
        finally:
            _stop(proc)
    finally:
        shutil.rmtree(work, ignore_errors=True)
