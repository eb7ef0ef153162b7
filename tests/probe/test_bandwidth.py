from __future__ import annotations

from probe.bandwidth import MIB, buffer_size, measure_host_bandwidth
from probe.detect import GPUInfo


def test_it_measures_a_read_bandwidth_over_the_whole_buffer():
    found = measure_host_bandwidth(seconds=0.05, threads=2, buffer_bytes=32 * MIB)
    assert found.buffer_bytes == 32 * MIB and found.threads == 2
    assert found.passes >= 3  # the best of at least three timed passes
    # The figure is bytes over the best pass's seconds, in GB (10^9 bytes) per second.
    assert found.gbps == 32 * MIB / found.seconds / 1e9
    assert found.gbps > 0


def test_it_sizes_the_buffer_past_the_caches_and_within_free_ram():
    assert buffer_size(None) == 512 * MIB
    assert buffer_size(512 * MIB) == 256 * MIB  # never below 256 MiB: larger than any CPU's last-level cache
    assert buffer_size(4 * 1024 * MIB) == 1024 * MIB  # a quarter of what is free
    assert buffer_size(64 * 1024 * MIB) == 2048 * MIB  # at most 2 GiB: two seconds must be enough for passes


def test_it_computes_a_gpus_bandwidth_from_its_clocks():
    # NVML on an RTX 4090: 10,501 MHz x 384-bit bus x 2 (double data rate) = 1,008.1 GB/s (datasheet: 1,008).
    gpu = GPUInfo(vendor="NVIDIA", name="RTX 4090", memory_clock_mhz=10501, memory_bus_bits=384)
    assert round(gpu.bandwidth_gbps, 1) == 1008.1
    # An A100 80GB PCIe: 1,512 MHz x 5,120 bits x 2 = 1,935 GB/s, its datasheet figure.
    a100 = GPUInfo(vendor="NVIDIA", name="A100", memory_clock_mhz=1512, memory_bus_bits=5120)
    assert round(a100.bandwidth_gbps) == 1935
    assert GPUInfo(vendor="NVIDIA", name="no clocks").bandwidth_gbps is None
