"""Decode speed of the demo's generations by sampling setting, against greedy decoding in the same run.

    .venv/bin/python bench/sampling.py [--rounds 2] [--n-gen 128]

Sampling adds work per token on top of the decode step: the softmax over the vocabulary, the top-p set
(`engine.nucleus`) and the draw, and above temperature 1 a wider screening margin for the output head. Prints each
setting's median decode tokens/sec (the demo's own metric) and its ratio to greedy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SETTINGS = ((0.0, 1.0), (0.7, 0.95), (1.0, 1.0), (1.0, 0.9), (2.0, 0.95))
PROMPT = "Write a short story about a lighthouse keeper."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--n-gen", type=int, default=128)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from inference.engine import Engine, GenerationParams

    engine = Engine().load()
    speeds: dict[tuple[float, float], list[float]] = {setting: [] for setting in SETTINGS}
    for _ in range(args.rounds):
        for temperature, top_p in SETTINGS:
            params = GenerationParams(
                prompt=PROMPT, max_new_tokens=args.n_gen, temperature=temperature, top_p=top_p, seed=1
            )
            _, metrics = engine.generate_text(params)
            speeds[(temperature, top_p)].append(metrics.decode_tps)
    greedy = statistics.median(speeds[SETTINGS[0]])
    print(f"output head: {engine.status()['output_head']}; {args.rounds} rounds of {args.n_gen} tokens")
    for (temperature, top_p), values in speeds.items():
        median = statistics.median(values)
        print(f"temperature {temperature:.1f}, top-p {top_p:.2f}: {median:5.1f} tok/s  {median / greedy:.2f}x greedy")


if __name__ == "__main__":
    main()
