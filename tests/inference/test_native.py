"""Building the C++ step (inference/native.py): the instruction set chosen from the CPU's flags."""

from __future__ import annotations

from inference import native

CPUINFO = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma f16c {extra}\n"


def test_it_builds_the_vnni_kernels_only_where_the_cpu_has_avx512_vnni():
    name, flags = native.build_flags(native.cpu_flags(CPUINFO.format(extra="avx512f avx512bw avx512vl avx512_vnni")))
    assert name == "avx512vnni" and "-mavx512vnni" in flags and "-ffp-contract=off" in flags
    name, flags = native.build_flags(native.cpu_flags(CPUINFO.format(extra="avx512f")))
    assert name == "avx2" and not any(flag.startswith("-mavx512") for flag in flags)


def test_it_refuses_a_cpu_without_avx2():
    assert native.build_flags(native.cpu_flags("flags\t: fpu sse2 avx\n")) is None
    assert native.cpu_flags("no flags line") == set()


def test_the_built_module_names_its_instruction_set(native_module):
    expected = native.build_flags(native.cpu_flags())[0]
    assert native_module.isa == {"avx512vnni": "avx512-vnni", "avx2": "avx2"}[expected]


def test_it_keeps_one_build_in_the_cache(tmp_path):
    current = native.library_path(tmp_path, "avx2", ["-O3"])
    older = tmp_path / "rigfit-native-avx2-000000000000.so"
    for path in (current, older, tmp_path / "rigfit-native-avx2-000000000000.so.lock", tmp_path / "other.so"):
        path.write_bytes(b"x")
    assert native.remove_older_builds(current) == [older]
    assert current.exists() and (tmp_path / "other.so").exists()
    assert current.name.startswith("rigfit-native-avx2-") and len(current.stem.rsplit("-", 1)[1]) == 12
