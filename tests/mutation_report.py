"""Kill rate per module from mutmut's results, for `make mutation` (docs/testing.md).

Reads var/mutation/<module>.py.meta, else mutants/<module>.py.meta (mutmut 3 writes one per mutated file), and
prints, per module: mutants, killed (a test failed or timed out), survived, not reached by any selected test, the
kill rate over all mutants, and the kill rate once the equivalent mutants listed in docs/testing.md are set aside.
Then every surviving mutant with its reason: "equivalent: ..." when docs/testing.md lists it as equivalent, "NOT KILLED
(no test yet): ..." when it lists it as "- not killed, `name`: why", and "NOT EXPLAINED" when it does not list it.

    python tests/mutation_report.py [module ...]     # e.g. catalog/fit.py; default: every module with results

A module may be followed by `:f,g` (as in the Makefile's `inference/engine.py:sample_next,...`): then only the mutants
of the functions f and g count.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "testing.md"
MODULES = [
    "catalog/fit.py",
    "catalog/speed.py",
    "catalog/speed_fit.py",
    "benchmarks/llamabench.py",
    "benchmarks/outliers.py",
    "catalog/services.py",
    "benchmarks/services.py",
    "catalog/howto.py",
    "catalog/templatetags/rigfit.py",
    "inference/engine.py:sample_next,_draw,nucleus,_nucleus_by_histogram",
]
KILLED = {1, 3, 36, 24, -24, 152, 255}  # mutmut's stats.py: a failing test, pytest's internal error, a timeout
SURVIVED = {0}
NO_TESTS = {5, 33}
# "- `catalog.fit.x_name__mutmut_3`: the reason" in docs/testing.md's list of equivalent mutants.
EQUIVALENT_LINE = re.compile(r"^\s*[-*]\s+`(?P<name>[\w.ǁ]+__mutmut_\d+)`\s*[:\u2014-]\s*(?P<reason>.+)$")
# "- not killed, `catalog.fit.x_name__mutmut_3`: why" in its list of survivors not yet killed (not equivalent).
NOT_KILLED_LINE = re.compile(r"^\s*[-*]\s+not killed,\s+`(?P<name>[\w.ǁ]+__mutmut_\d+)`\s*[:\u2014-]\s*(?P<reason>.+)$")


def _listed(pattern: re.Pattern[str], doc: Path) -> dict[str, str]:
    if not doc.exists():
        return {}
    found = {}
    for line in doc.read_text(encoding="utf-8").splitlines():
        match = pattern.match(line)
        if match:
            found[match["name"]] = match["reason"].strip()
    return found


def equivalent_mutants(doc: Path = DOC) -> dict[str, str]:
    return _listed(EQUIVALENT_LINE, doc)


def known_survivors(doc: Path = DOC) -> dict[str, str]:
    """Survivors docs/testing.md explains but that are not equivalent (a test is still owed)."""
    return _listed(NOT_KILLED_LINE, doc)


def _function_of(name: str) -> str:
    """`catalog.fit.x_kv_cells__mutmut_3` -> `kv_cells`; a method `...xǁClassǁmethod__mutmut_1` -> `Class.method`."""
    mangled = name.rsplit("__mutmut_", 1)[0].rsplit(".", 1)[-1]
    return mangled.removeprefix("x_") if not mangled.startswith("xǁ") else ".".join(mangled.split("ǁ")[1:])


def _reason(name: str, equivalent: dict[str, str], owed: dict[str, str]) -> str:
    if name in equivalent:
        return f"equivalent: {equivalent[name]}"
    if name in owed:
        return f"NOT KILLED (no test yet): {owed[name]}"
    return "NOT EXPLAINED"


def report(modules: list[str], out=sys.stdout) -> int:
    equivalent = equivalent_mutants()
    owed = known_survivors()
    survivors: list[tuple[str, str]] = []
    print(
        f"{'module':28} {'mutants':>7} {'killed':>6} {'survived':>8} {'no test':>7} {'kill %':>6} {'w/o equiv %':>11}",
        file=out,
    )
    for entry in modules:
        module, _, wanted = entry.partition(":")
        functions = set(wanted.split(",")) if wanted else None
        label = module if functions is None else f"{module}:{len(functions)} fns"
        # `make mutation` keeps each module's results in var/mutation/ (a later run's setup may reset mutants/).
        meta = ROOT / "var" / "mutation" / f"{module}.meta"
        if not meta.exists():
            meta = ROOT / "mutants" / f"{module}.meta"
        if not meta.exists():
            print(f"{label:28} (no results: run `make mutation MODULES={entry}`)", file=out)
            continue
        codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
        if functions is not None:
            codes = {name: code for name, code in codes.items() if _function_of(name) in functions}
        checked = {name: code for name, code in codes.items() if code is not None}
        killed = sum(code in KILLED for code in checked.values())
        alive = sorted(name for name, code in checked.items() if code not in KILLED)
        no_test = sum(code in NO_TESTS for code in checked.values())
        n_equiv = sum(name in equivalent for name in alive)
        total = len(checked)
        rate = 100 * killed / total if total else 0.0
        rate_eq = 100 * killed / (total - n_equiv) if total - n_equiv else 0.0
        unchecked = len(codes) - total
        tail = f"  ({unchecked} not run yet)" if unchecked else ""
        print(
            f"{label:28} {total:7} {killed:6} {len(alive) - no_test:8} {no_test:7} {rate:6.1f} {rate_eq:11.1f}{tail}",
            file=out,
        )
        survivors += [(name, _reason(name, equivalent, owed)) for name in alive]
    if survivors:
        print("\nsurviving mutants (`.venv/bin/mutmut show NAME` prints the change):", file=out)
        for name, reason in survivors:
            print(f"  {name}: {reason}", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(report(sys.argv[1:] or MODULES))
