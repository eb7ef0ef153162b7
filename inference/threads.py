"""How many threads a generation should use, from what the machine really has free.

A decode step split over two threads is only as fast as the slower one: when another process keeps one of the two
cores busy, the second thread runs half the time and the step waits for it at every synchronisation point (the
demo fell from about 90 to 2 tokens/s that way, where one thread alone still made 47). So each generation picks its
thread count from:

- the CPUs this process may run on (`sched_getaffinity`) and the cgroup's CPU quota (`cpu.max`, or cgroup v1's
  `cpu.cfs_quota_us` / `cpu.cfs_period_us`), which bound the cores at all;
- the CPU time that *other* processes took on those CPUs over a recent window: the busy ticks of `/proc/stat`'s
  per-CPU lines (steal included: time the hypervisor gave elsewhere) less this process's own CPU time; or, with no
  usable window, the instantaneous run queue (`procs_running`) less the calling thread.

A second thread is used only where about a whole core is free for it (`EXTRA_THREAD_SLACK`). `choose_threads` and
`others_busy_cores` are pure; `ThreadGovernor` samples the machine and re-checks during a generation.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

# A fraction of a core that may be taken by others while a thread is still given to it: free capacity is rounded
# down after adding this, so 2 cores with others using 0.3 of one still get 2 threads, with 0.4 of one only 1.
EXTRA_THREAD_SLACK = 0.3
# Shortest and longest window whose average is trusted; outside it the run queue at this instant decides. A
# generation's start trusts only a recent window (back-to-back generations): an idle gap's average says little about
# now.
MIN_WINDOW_S = 0.03
MAX_WINDOW_S = 2.0
START_WINDOW_S = 0.5
# How often a running generation re-checks (one /proc/stat read and one clock read).
RECHECK_S = 0.15


@dataclass(frozen=True)
class CpuTimes:
    busy: int  # ticks spent running anything (user, nice, system, irq, softirq, steal)
    total: int  # busy + idle + iowait


@dataclass(frozen=True)
class Sample:
    wall_s: float  # time.monotonic() when taken
    own_cpu_s: float  # CPU time of the work whose share is ours (the process, or a generation's threads)
    cpus: Mapping[int, CpuTimes]  # per CPU, from /proc/stat
    procs_running: int  # tasks runnable at that instant, this thread included
    owner: int = 0  # whose CPU time own_cpu_s counts: samples of different owners make no window


def parse_proc_stat(text: str) -> tuple[dict[int, CpuTimes], int]:
    """Per-CPU busy/total ticks and `procs_running` from the text of /proc/stat."""
    cpus: dict[int, CpuTimes] = {}
    running = 0
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        name = fields[0]
        if name.startswith("cpu") and name[3:].isdigit():
            values = [int(v) for v in fields[1:11]] + [0] * (10 - len(fields[1:11]))
            user, nice, system, idle, iowait, irq, softirq, steal = values[:8]
            # guest and guest_nice are already counted in user and nice
            busy = user + nice + system + irq + softirq + steal
            cpus[int(name[3:])] = CpuTimes(busy=busy, total=busy + idle + iowait)
        elif name == "procs_running" and len(fields) > 1:
            running = int(fields[1])
    return cpus, running


def parse_cpu_max(text: str) -> float | None:
    """Cores allowed by a cgroup v2 `cpu.max` ("max 100000" -> None, "150000 100000" -> 1.5)."""
    parts = text.split()
    if len(parts) < 2 or parts[0] == "max":
        return None
    quota, period = int(parts[0]), int(parts[1])
    return quota / period if quota > 0 and period > 0 else None


def parse_cfs(quota_text: str, period_text: str) -> float | None:
    """Cores allowed by cgroup v1's cfs quota and period (a quota of -1: no limit)."""
    quota, period = int(quota_text.strip()), int(period_text.strip())
    return quota / period if quota > 0 and period > 0 else None


def _cgroup_dirs(proc_cgroup: str, controller_root: Path, controller: str) -> list[Path]:
    """This process's cgroup directory under `controller_root` and every ancestor up to the root."""
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if (controller == "" and hierarchy == "0") or controller in controllers.split(","):
            current = controller_root / path.lstrip("/")
            dirs = [current]
            while current != controller_root and controller_root in current.parents:
                current = current.parent
                dirs.append(current)
            return dirs
    return []


def cgroup_quota_cores(root: Path = Path("/sys/fs/cgroup"), proc_cgroup: str | None = None) -> float | None:
    """The tightest CPU quota over this process's cgroup and its ancestors (v2 or v1), None when unlimited."""
    if proc_cgroup is None:
        try:
            proc_cgroup = Path("/proc/self/cgroup").read_text()
        except OSError:
            return None
    limits: list[float] = []
    for directory in _cgroup_dirs(proc_cgroup, root, ""):  # cgroup v2, unified hierarchy
        try:
            value = parse_cpu_max((directory / "cpu.max").read_text())
        except (OSError, ValueError):
            continue
        if value is not None:
            limits.append(value)
    for base in (root / "cpu", root / "cpu,cpuacct"):  # cgroup v1
        for directory in _cgroup_dirs(proc_cgroup, base, "cpu"):
            try:
                value = parse_cfs(
                    (directory / "cpu.cfs_quota_us").read_text(), (directory / "cpu.cfs_period_us").read_text()
                )
            except (OSError, ValueError):
                continue
            if value is not None:
                limits.append(value)
    return min(limits) if limits else None


def others_busy_cores(
    before: Sample, after: Sample, cpus: Iterable[int], *, max_window_s: float = MAX_WINDOW_S
) -> float | None:
    """Cores' worth of CPU time that other processes took on `cpus` between two samples; None when the window is
    too short or too long to say (or the counters went backwards)."""
    wall = after.wall_s - before.wall_s
    own = after.own_cpu_s - before.own_cpu_s
    if not MIN_WINDOW_S <= wall <= max_window_s or before.owner != after.owner or own < 0:
        return None
    busy = total = 0
    counted = 0
    for cpu in cpus:
        a, b = before.cpus.get(cpu), after.cpus.get(cpu)
        if a is None or b is None:
            continue
        busy += b.busy - a.busy
        total += b.total - a.total
        counted += 1
    if counted == 0 or total <= 0 or busy < 0:
        return None
    busy_cores = busy / total * counted  # each CPU's ticks are its own clock: no USER_HZ or wall clock needed
    own_cores = own / wall
    return max(0.0, busy_cores - own_cores)


def choose_threads(
    *,
    limit: int,
    allowed_cpus: int,
    quota_cores: float | None,
    others_cores: float,
    slack: float = EXTRA_THREAD_SLACK,
) -> int:
    """Threads for the next stretch of decoding: the free cores (allowed CPUs, capped by the cgroup quota, less what
    others use), rounded down after `slack`, within 1..min(limit, allowed_cpus)."""
    ceiling = max(1, min(limit, allowed_cpus))
    capacity = float(allowed_cpus) if quota_cores is None else min(float(allowed_cpus), quota_cores)
    free = capacity - max(0.0, others_cores)
    return max(1, min(ceiling, math.floor(free + slack + 1e-9)))


def take_sample(
    stat_path: Path = Path("/proc/stat"), *, own_cpu: Callable[[], float] = time.process_time, owner: int = 0
) -> Sample | None:
    """/proc/stat now, with `own_cpu()`: by default the whole process's CPU time; the engine passes its generation's
    threads' (the calling thread and the native step's helpers), so that other requests served by the same process
    count as load too, with `owner` naming the calling thread."""
    try:
        text = stat_path.read_text()
    except OSError:
        return None
    cpus, running = parse_proc_stat(text)
    return Sample(wall_s=time.monotonic(), own_cpu_s=own_cpu(), cpus=cpus, procs_running=running, owner=owner)


def allowed_cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


@dataclass(frozen=True)
class Decision:
    threads: int
    others_cores: float  # the estimate it was made from
    basis: str  # "window" (others' CPU time over a window), "run queue" (instantaneous), "fixed" (no /proc/stat)


class ThreadGovernor:
    """Chooses the thread count when a generation starts and re-checks it every `recheck_s` while it runs.

    `apply` sets the count (the native step's and torch's pools). One governor per engine; callers hold the
    engine's generation lock, so no two generations use it at once.
    """

    def __init__(
        self,
        limit: int,
        apply: Callable[[int], None],
        *,
        sampler: Callable[[], Sample | None] = take_sample,
        cpus: Callable[[], set[int]] = allowed_cpus,
        quota: Callable[[], float | None] = cgroup_quota_cores,
        clock: Callable[[], float] = time.monotonic,
        recheck_s: float = RECHECK_S,
    ) -> None:
        self.limit = max(1, limit)
        self._apply = apply
        self._sampler = sampler
        self._cpus = cpus
        self._quota = quota
        self._clock = clock  # the sampler's clock (Sample.wall_s)
        self.recheck_s = recheck_s
        self._last: Sample | None = None
        self._applied = 0
        self.history: list[int] = []  # thread counts used during the current generation, in order

    def _decide(self, now: Sample | None, max_window_s: float) -> Decision:
        cpus = self._cpus()
        quota = self._quota()
        if now is None:
            threads = choose_threads(limit=self.limit, allowed_cpus=len(cpus), quota_cores=quota, others_cores=0.0)
            return Decision(threads, 0.0, "fixed")
        others = None
        if self._last is not None:
            others = others_busy_cores(self._last, now, cpus, max_window_s=max_window_s)
        basis = "window"
        if others is None:
            others, basis = float(max(0, now.procs_running - 1)), "run queue"
        threads = choose_threads(limit=self.limit, allowed_cpus=len(cpus), quota_cores=quota, others_cores=others)
        return Decision(threads, others, basis)

    def _set(self, threads: int) -> None:
        if threads != self._applied:
            self._apply(threads)
            self._applied = threads
        self.history.append(threads)

    def start(self) -> Decision:
        """At a generation's start: decide from the window since the last sample, or from the run queue."""
        now = self._sampler()
        decision = self._decide(now, START_WINDOW_S)
        self._last = now
        self.history = []
        self._set(decision.threads)
        return decision

    def tick(self) -> Decision | None:
        """Between tokens: re-decide once `recheck_s` has passed since the last sample (None: not yet)."""
        if self._last is not None and self._clock() - self._last.wall_s < self.recheck_s:
            return None
        now = self._sampler()
        decision = self._decide(now, MAX_WINDOW_S)
        self._last = now
        if decision.threads != self._applied:
            self._set(decision.threads)
        return decision

    @property
    def threads(self) -> int:
        return self._applied
