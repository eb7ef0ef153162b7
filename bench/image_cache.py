"""What the SHA-256 image-embedding cache saves: a second question about the same image skips the vision encoder.

    .venv/bin/python bench/image_cache.py [--images 5] [--image-size 224] [--tokens 8]

Builds a randomly initialised tiny VLM in a temporary directory (Moondream-shaped: patch encoder, projection, Gemma 3
text decoder; no weights can be downloaded here), loads it through the real loader, and for each of N distinct images
asks a first question (encoder runs) and a second one (cache hit). Prints the mean time of each and the saving.
The saving grows with the encoder's share of the work; Moondream 2's SigLIP encoder is far larger than this one.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--tokens", type=int, default=8)
    args = parser.parse_args()

    import torch
    from PIL import Image

    from inference.vision import VisionEngine, check_image, load_vlm, save_tiny_vlm

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        path = save_tiny_vlm(Path(tmp) / "vlm", image_size=args.image_size, vision_width=192, vision_layers=4)
        engine = VisionEngine(load_vlm(path), cache_entries=args.images)
        first_ms, second_ms, encode_ms = [], [], []
        warm = io.BytesIO()
        Image.new("RGB", (64, 64), (1, 2, 3)).save(warm, format="PNG")
        engine.ask(check_image(warm.getvalue()), "caption", max_new_tokens=2)  # warm-up, not counted
        for i in range(args.images):
            buffer = io.BytesIO()
            Image.effect_noise((640, 480), 40 + i).convert("RGB").save(buffer, format="JPEG")
            image = check_image(buffer.getvalue())
            started = time.perf_counter()
            first = engine.ask(image, "query", "What is in the picture?", max_new_tokens=args.tokens)
            first_ms.append((time.perf_counter() - started) * 1000)
            encode_ms.append(first.encode_ms)
            started = time.perf_counter()
            second = engine.ask(image, "query", "What colour is it?", max_new_tokens=args.tokens)
            second_ms.append((time.perf_counter() - started) * 1000)
            assert not first.cache_hit and second.cache_hit
    cold, warm_ms = statistics.fmean(first_ms), statistics.fmean(second_ms)
    print(f"encoder calls: {engine.model.encoder_calls} for {2 * args.images} questions on {args.images} images")
    print(f"first question (encoder runs): {cold:.1f} ms, of which encoding {statistics.fmean(encode_ms):.1f} ms")
    print(f"second question (cache hit):   {warm_ms:.1f} ms")
    print(f"saving: {cold - warm_ms:.1f} ms per repeated question ({(cold - warm_ms) / cold:.0%})")


if __name__ == "__main__":
    main()
