"""A small timing harness: compared runs interleaved in one process, ratios per round.

Why. Timing library A for a minute and then library B for a minute on a shared machine measures
the machine's load as much as the libraries (re-runs of the old scripts gave ratios from 0.55x
to 84x). Here every compared run is timed in the same *round*, back to back, and every figure is
a ratio taken within a round; a round in which the machine was slow slows all of its runs alike.

Method (:func:`interleave`):

* one torch thread by default (:func:`setup`), every case warmed up first (untimed calls);
* ``rounds`` rounds; in each round every case runs ``calls`` times and its mean seconds per call
  is recorded; the order alternates (A B C, then C B A, ...) so no case always runs first;
* a ratio between two cases is computed **per round** (t_a / t_b of the same round), and
  :func:`ratio_summary` reports the median of those ratios with their spread: the interquartile
  range (q1-q3) and the min-max.

Every benchmark includes a *floor*: the same networks' plain forward + backward (or forward, for
evaluation) on the same number of rows, so each figure reads "x times the floor" (the overhead
above the unavoidable matrix products) and "x times multivae" when it is installed.
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch


def setup(threads: int = 1) -> None:
    """One torch thread (the default) for every timed run."""
    torch.set_num_threads(threads)


def interleave(
    cases: Mapping[str, Callable[[], object]],
    rounds: int,
    calls: int,
    warmup: int,
    sync: Callable[[], None] | None = None,
) -> dict[str, list[float]]:
    """Seconds per call of every case, one entry per round (``rounds`` entries each).

    ``sync`` (e.g. ``torch.cuda.synchronize``) is called before each clock reading, so that
    asynchronous device work is inside the timed region."""
    sync = sync or (lambda: None)
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    names = list(cases)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            fn = cases[name]
            sync()
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            sync()
            times[name].append((time.perf_counter() - t0) / calls)
    return times


@dataclass
class Summary:
    """Median of per-round values with the quartiles and the extremes."""

    median: float
    q1: float
    q3: float
    lo: float
    hi: float

    def ratio(self) -> str:
        """``1.23x (1.20-1.31; 1.10-1.45)``: median (IQR; min-max)."""
        return f"{self.median:.2f}x ({self.q1:.2f}-{self.q3:.2f}; {self.lo:.2f}-{self.hi:.2f})"


def summarize(values: Sequence[float]) -> Summary:
    values = sorted(values)
    if len(values) >= 2:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    else:
        q1 = q3 = values[0]
    return Summary(statistics.median(values), q1, q3, values[0], values[-1])


def ratio_summary(times: Mapping[str, list[float]], num: str, den: str) -> Summary:
    """Per-round ratios t_num / t_den (same round), summarised."""
    return summarize([a / b for a, b in zip(times[num], times[den])])


def rate(times: Mapping[str, list[float]], name: str, rows: int) -> float:
    """Median rows per second of a case that handles ``rows`` rows per call."""
    return rows / statistics.median(times[name])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    """One line naming the machine, its load and the software versions."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    dev = ""
    if torch.cuda.is_available():
        dev = f", GPU {torch.cuda.get_device_name(0)}"
    return (f"{platform.machine()} {platform.processor() or platform.system()}, {os.cpu_count()} CPUs{dev}, "
            f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start, torch {torch.__version__}, "
            f"threads={torch.get_num_threads()}, python {platform.python_version()}")


def load_now() -> str:
    if not hasattr(os, "getloadavg"):
        return "n/a"
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def import_multivae_or_none():
    """multivae (via the shim) or None with the reason printed; it is an optional comparison."""
    try:
        from multivae_shim import import_multivae

        return import_multivae()
    except Exception as e:  # not installed, or broken beside this torch
        print(f"multivae not available ({type(e).__name__}: {e}); comparing with the floor only")
        return None


def write_out(name: str, text: str) -> None:
    """Also write ``text`` to $OUT/name when the OUT environment variable is set (atomic)."""
    out = os.environ.get("OUT")
    if not out:
        return
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, name)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def report(name: str, headers: Sequence[str], rows: Sequence[Sequence[object]], multivae_headers: Sequence[str] = ()
           ) -> str:
    """Print the markdown table of ``rows`` (``multivae_headers`` appended to ``headers`` when given)
    and also write it with the machine's description to $OUT/name (:func:`write_out`)."""
    table = markdown_table([*headers, *multivae_headers], rows)
    print()
    print(table)
    write_out(name, machine() + "\n\n" + table + "\n")
    return table
