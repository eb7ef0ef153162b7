"""The thread count a generation picks from what the machine has free (inference/threads.py), on fake machines."""

from __future__ import annotations

from pathlib import Path

import pytest

from inference.threads import (
    CpuTimes,
    Sample,
    ThreadGovernor,
    cgroup_quota_cores,
    choose_threads,
    others_busy_cores,
    parse_cfs,
    parse_cpu_max,
    parse_proc_stat,
)

STAT = """cpu  {a_user} 0 {a_sys} {a_idle} 0 0 0 {steal} 0 0
cpu0 {a_user} 0 {a_sys} {a_idle} 0 0 0 {steal} 0 0
cpu1 {b_user} 0 {b_sys} {b_idle} 0 0 0 0 0 0
intr 1 2 3
ctxt 100
procs_running {running}
procs_blocked 0
"""


def _stat(*, cpu0: tuple[int, int, int], cpu1: tuple[int, int, int], steal: int = 0, running: int = 1) -> str:
    return STAT.format(
        a_user=cpu0[0],
        a_sys=cpu0[1],
        a_idle=cpu0[2],
        b_user=cpu1[0],
        b_sys=cpu1[1],
        b_idle=cpu1[2],
        steal=steal,
        running=running,
    )


def _sample(text: str, *, wall_s: float, own_cpu_s: float) -> Sample:
    cpus, running = parse_proc_stat(text)
    return Sample(wall_s=wall_s, own_cpu_s=own_cpu_s, cpus=cpus, procs_running=running)


def test_it_reads_busy_and_total_ticks_per_cpu_and_the_run_queue():
    cpus, running = parse_proc_stat(_stat(cpu0=(100, 20, 300), cpu1=(5, 5, 10), steal=7, running=3))
    assert cpus == {0: CpuTimes(busy=127, total=427), 1: CpuTimes(busy=10, total=20)}
    assert running == 3


# A 2-core machine over 0.2 s (20 ticks per CPU at USER_HZ=100).
QUIET_BEFORE = _stat(cpu0=(1000, 100, 5000), cpu1=(1000, 100, 5000))


def test_it_gives_a_quiet_machine_both_threads():
    before = _sample(QUIET_BEFORE, wall_s=10.0, own_cpu_s=1.0)
    # our own decode kept both cores busy (0.4 s of CPU in 0.2 s): nobody else ran
    after = _sample(_stat(cpu0=(1018, 102, 5000), cpu1=(1019, 101, 5000)), wall_s=10.2, own_cpu_s=1.4)
    others = others_busy_cores(before, after, {0, 1})
    assert others == pytest.approx(0.0, abs=0.01)
    assert choose_threads(limit=2, allowed_cpus=2, quota_cores=None, others_cores=others) == 2


def test_it_falls_back_to_one_thread_when_another_process_keeps_a_core_busy():
    before = _sample(QUIET_BEFORE, wall_s=10.0, own_cpu_s=1.0)
    # both cores busy the whole window, our process used one core's worth: someone else used the other
    after = _sample(_stat(cpu0=(1020, 100, 5000), cpu1=(1020, 100, 5000)), wall_s=10.2, own_cpu_s=1.2)
    others = others_busy_cores(before, after, {0, 1})
    assert others == pytest.approx(1.0, abs=0.01)
    assert choose_threads(limit=2, allowed_cpus=2, quota_cores=None, others_cores=others) == 1


def test_it_counts_steal_time_as_taken():
    before = _sample(QUIET_BEFORE, wall_s=10.0, own_cpu_s=1.0)
    # cpu0 half stolen by the hypervisor, cpu1 idle, we were idle too
    after = _sample(_stat(cpu0=(1000, 100, 5010), cpu1=(1000, 100, 5020), steal=10), wall_s=10.2, own_cpu_s=1.0)
    assert others_busy_cores(before, after, {0, 1}) == pytest.approx(0.5, abs=0.01)


def test_it_ignores_load_on_cpus_outside_its_affinity():
    before = _sample(QUIET_BEFORE, wall_s=10.0, own_cpu_s=1.0)
    after = _sample(_stat(cpu0=(1000, 100, 5020), cpu1=(1020, 100, 5000)), wall_s=10.2, own_cpu_s=1.0)
    assert others_busy_cores(before, after, {0}) == pytest.approx(0.0)  # cpu1's load is not ours to share
    # affinity limited to one CPU: one thread whatever the load
    assert choose_threads(limit=8, allowed_cpus=1, quota_cores=None, others_cores=0.0) == 1


def test_it_makes_no_window_of_two_threads_cpu_times():
    before = _sample(QUIET_BEFORE, wall_s=10.0, own_cpu_s=1.0)
    after = _sample(_stat(cpu0=(1020, 100, 5000), cpu1=(1000, 100, 5020)), wall_s=10.2, own_cpu_s=1.2)
    assert others_busy_cores(before, after, {0, 1}) == pytest.approx(0.0)
    other_thread = Sample(after.wall_s, 0.1, after.cpus, after.procs_running, owner=42)  # its clock started later
    assert others_busy_cores(before, other_thread, {0, 1}) is None


def test_it_says_nothing_from_a_window_too_short_or_too_long():
    before = _sample(QUIET_BEFORE, wall_s=10.0, own_cpu_s=1.0)
    assert others_busy_cores(before, _sample(QUIET_BEFORE, wall_s=10.001, own_cpu_s=1.0), {0, 1}) is None
    assert others_busy_cores(before, _sample(QUIET_BEFORE, wall_s=99.0, own_cpu_s=1.0), {0, 1}) is None


@pytest.mark.parametrize(
    ("limit", "allowed", "quota", "others", "expected"),
    [
        (2, 2, None, 0.0, 2),
        (2, 2, None, 0.3, 2),  # a light neighbour: the second thread still pays
        (2, 2, None, 0.5, 1),
        (2, 2, None, 1.0, 1),
        (2, 2, None, 3.0, 1),  # never fewer than one
        (1, 2, None, 0.0, 1),  # the configured limit
        (8, 4, None, 0.0, 4),  # no more threads than allowed CPUs
        (8, 4, 1.5, 0.0, 1),  # cgroup quota of 1.5 cores: a second thread would be throttled
        (8, 4, 2.0, 0.0, 2),
        (8, 4, 3.0, 1.0, 2),
        (16, 16, None, 6.2, 10),
    ],
)
def test_it_chooses_the_free_cores(limit, allowed, quota, others, expected):
    assert choose_threads(limit=limit, allowed_cpus=allowed, quota_cores=quota, others_cores=others) == expected


def test_it_reads_cgroup_v2_and_v1_quotas():
    assert parse_cpu_max("max 100000\n") is None
    assert parse_cpu_max("150000 100000\n") == 1.5
    assert parse_cfs("-1\n", "100000\n") is None
    assert parse_cfs("50000\n", "100000\n") == 0.5


def test_it_finds_the_tightest_quota_on_a_fake_cgroup_tree(tmp_path: Path):
    v2 = tmp_path / "app" / "worker"
    v2.mkdir(parents=True)
    (tmp_path / "app" / "cpu.max").write_text("300000 100000\n")
    (v2 / "cpu.max").write_text("max 100000\n")
    assert cgroup_quota_cores(tmp_path, "0::/app/worker\n") == 3.0  # the parent's limit binds the child
    v1 = tmp_path / "cpu" / "box"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("120000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_quota_cores(tmp_path, "4:memory:/x\n1:cpu:/box\n0::/app/worker\n") == pytest.approx(1.2)
    assert cgroup_quota_cores(tmp_path, "1:cpu:/elsewhere\n") is None  # no limit files: unlimited


class FakeMachine:
    """/proc/stat of a 2-core machine whose other load and our own CPU use the test sets; time moves per sample."""

    def __init__(self) -> None:
        self.wall = 100.0
        self.own = 5.0
        self.ticks = [[0, 0], [0, 0]]  # per CPU: busy, idle
        self.running = 1

    def advance(self, seconds: float, *, others_cores: float, own_cores: float) -> None:
        total = round(seconds * 100)
        busy = min(2 * total, round((others_cores + own_cores) * total))
        for cpu in range(2):
            share = min(total, busy - cpu * total) if busy > cpu * total else 0
            self.ticks[cpu][0] += share
            self.ticks[cpu][1] += total - share
        self.wall += seconds
        self.own += own_cores * seconds

    def sample(self) -> Sample:
        cpus = {i: CpuTimes(busy=b, total=b + idle) for i, (b, idle) in enumerate(self.ticks)}
        return Sample(wall_s=self.wall, own_cpu_s=self.own, cpus=cpus, procs_running=self.running)


def test_it_switches_threads_during_a_generation_as_load_comes_and_goes():
    machine = FakeMachine()
    applied: list[int] = []
    governor = ThreadGovernor(
        2,
        applied.append,
        sampler=machine.sample,
        cpus=lambda: {0, 1},
        quota=lambda: None,
        clock=lambda: machine.wall,
        recheck_s=0.15,
    )
    machine.running = 2  # a busy neighbour at the start, seen on the run queue (no recent window)
    first = governor.start()
    assert (first.threads, first.basis) == (1, "run queue")
    machine.advance(0.1, others_cores=1.0, own_cores=1.0)
    assert governor.tick() is None  # not yet 0.15 s since the last sample
    machine.advance(0.1, others_cores=1.0, own_cores=1.0)
    decision = governor.tick()
    assert decision is not None and decision.basis == "window" and decision.threads == 1
    machine.advance(0.2, others_cores=0.0, own_cores=1.0)  # the neighbour stopped
    assert governor.tick().threads == 2
    machine.advance(0.2, others_cores=0.9, own_cores=1.1)  # it came back while we ran two threads
    assert governor.tick().threads == 1
    assert applied == [1, 2, 1]
    assert governor.history == [1, 2, 1]
    machine.running = 1
    machine.advance(0.3, others_cores=0.0, own_cores=0.0)  # between generations, back to back: the window decides
    again = governor.start()
    assert (again.threads, again.basis) == (2, "window")


def test_it_starts_a_quiet_generation_on_every_allowed_thread_and_works_without_proc_stat():
    governor = ThreadGovernor(4, lambda n: None, sampler=lambda: None, cpus=lambda: {0, 1, 2}, quota=lambda: None)
    decision = governor.start()
    assert (decision.threads, decision.basis) == (3, "fixed")
