"""The output head's 4-bit screening (native.cpp): what it saves, what it changes.

    .venv/bin/python bench/head_screen.py [--reps 5] [--n-gen 128]

Runs the native decode step twice over the same int8 weights, with and without the 4-bit screening copy of the
output head, and prints: decode tokens/sec of each (alternating repetitions, tg128-style random tokens) and their
ratio; over fixed texts, teacher-forced one token at a time, the perplexity of each, whether every greedy pick agrees,
how many head rows were recomputed from the int8 weights per step (median, largest) and the largest difference of a
logit left at its 4-bit score (the error the 8-nat margin has to cover).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TEXTS = (
    "The water cycle describes how water moves between the oceans, the air and the land. Heat from the sun "
    "evaporates water from seas and lakes; the vapour rises, cools and condenses into clouds. When droplets grow "
    "heavy enough they fall as rain or snow. Some of that water runs off into rivers and flows back to the sea.",
    "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n"
    "print([fibonacci(i) for i in range(10)])\n",
    "Paris est la capitale de la France. La ville compte environ deux millions d'habitants et attire chaque année "
    "des millions de visiteurs venus du monde entier pour ses musées, ses monuments et sa cuisine.",
    "Q: What is the boiling point of water at sea level?\nA: 100 degrees Celsius.\nQ: Who wrote Hamlet?\nA:",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--n-gen", type=int, default=128)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    import torch

    from inference import native
    from inference.engine import Engine
    from inference.fastpath import SCREEN_MARGIN, GemmaFastDecoder

    engine = Engine().load()
    module = native.load()
    if module is None or getattr(engine.model, "rigfit_head_screen", None) is None:
        sys.exit(f"the native step is not in use here ({native.failure() or 'no screening copy'})")
    max_len = 512
    plain = GemmaFastDecoder(engine.model, max_len=max_len, native=module, head_screen=False)
    screened = GemmaFastDecoder(engine.model, max_len=max_len, native=module, head_screen=True)

    nll = {"int8": 0.0, "screened": 0.0}
    steps, agree, rescored, left_error = 0, 0, [], []
    with torch.inference_mode():
        for text in TEXTS:
            ids = engine.tokenizer(text, return_tensors="pt")["input_ids"]
            a, b = plain.prefill(ids[:, :1]), screened.prefill(ids[:, :1])
            for position in range(1, ids.shape[1]):
                target = int(ids[0, position])
                nll["int8"] -= float(torch.log_softmax(a, -1)[target])
                nll["screened"] -= float(torch.log_softmax(b, -1)[target])
                a, b = plain.decode(target), screened.decode(target)
                steps += 1
                agree += int(torch.argmax(a)) == int(torch.argmax(b))
                rescored.append(screened.rescored_rows)
                left_error.append(float((a - b).abs().max()))
        ppl = {name: math.exp(total / steps) for name, total in nll.items()}
        vocab = int(engine.model.model.embed_tokens.weight.shape[0])
        print(f"{steps} teacher-forced steps over {len(TEXTS)} texts, vocabulary {vocab}, margin {SCREEN_MARGIN}")
        print(
            f"perplexity int8 {ppl['int8']:.3f}, screened {ppl['screened']:.3f} "
            f"({ppl['screened'] / ppl['int8'] - 1:+.2%}); greedy picks agree {agree}/{steps}"
        )
        print(
            f"rows recomputed in int8 per step: median {statistics.median(rescored):.0f}, largest {max(rescored)} "
            f"({max(rescored) / vocab:.2%} of the head)"
        )
        print(
            f"largest error of a logit left at its 4-bit score: median over steps {statistics.median(left_error):.2f}, "
            f"largest {max(left_error):.2f}"
        )

        generator = torch.Generator().manual_seed(0)
        speeds = {"int8": [], "screened": []}
        for rep in range(args.reps + 1):
            for name, decoder in (("int8", plain), ("screened", screened)):
                decoder.prefill(torch.tensor([[2]]))
                tokens = torch.randint(10, vocab, (args.n_gen,), generator=generator).tolist()
                started = time.perf_counter()
                for token in tokens:
                    decoder.decode(token)
                if rep:  # the first round warms both up
                    speeds[name].append(args.n_gen / (time.perf_counter() - started))
    medians = {name: statistics.median(values) for name, values in speeds.items()}
    print(
        f"decode tg{args.n_gen} median of {args.reps}: int8 head {medians['int8']:.1f} tok/s, screened "
        f"{medians['screened']:.1f} tok/s: {medians['screened'] / medians['int8']:.2f}x"
    )


if __name__ == "__main__":
    main()
