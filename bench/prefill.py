"""Time to first token by prompt length: the native step one token at a time against the eager prefill.

    .venv/bin/python bench/prefill.py [--reps 3]

For each prompt length, runs the prefill both ways on the same engine (alternating) and prints the median
milliseconds of each and their ratio, so the crossing that `fastpath.NATIVE_PREFILL_MAX_TOKENS` encodes can be
checked on the host at hand.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LENGTHS = (2, 6, 12, 24, 32, 48, 96)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    import torch

    from inference import fastpath
    from inference.engine import Engine

    engine = Engine().load()
    decoder = engine._fast
    if decoder is None or decoder.backend != "native":
        sys.exit("the native step is not in use here")
    generator = torch.Generator().manual_seed(0)

    def timed(ids: torch.Tensor, limit: int) -> float:
        fastpath.NATIVE_PREFILL_MAX_TOKENS = limit
        started = time.perf_counter()
        decoder.prefill(ids)
        return (time.perf_counter() - started) * 1e3

    print(f"{'tokens':>6} {'native ms':>10} {'eager ms':>9} {'native/eager':>12}")
    with torch.inference_mode():
        for length in LENGTHS:
            ids = torch.randint(10, 200_000, (1, length), generator=generator)
            native, eager = [], []
            for _ in range(args.reps):
                native.append(timed(ids, length))
                eager.append(timed(ids, 0))
            n, e = statistics.median(native), statistics.median(eager)
            print(f"{length:>6} {n:>10.1f} {e:>9.1f} {n / e:>12.2f}")


if __name__ == "__main__":
    main()
