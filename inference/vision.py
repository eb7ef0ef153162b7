"""The vision path, Moondream 2 style: caption, query, detect and point on an uploaded image.

A vision-language model is configured by local path (RIGFIT_DEMO_VLM_PATH); nothing is downloaded.
- A Moondream 2 checkout (its config names `model_type` "moondream1"/"moondream" and ships its own code) is driven
  through its own API (`encode_image`, `caption`, `query`, `detect`, `point`), loaded with trust_remote_code
  because that code is local.
- A rigfit tiny VLM directory (written by `save_tiny_vlm`) holds a small image encoder, a projection into the text
  model's embedding space and a Gemma 3 text decoder: the same shape as Moondream (SigLIP encoder, projection, text
  decoder), small enough to build with random weights in tests, where no weights can be downloaded.

Uploads are checked before anything decodes them; encoded images are cached by the SHA-256 of the file's bytes in a
bounded LRU, so a second question about the same image skips the vision encoder.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 24_000_000  # about 6000 x 4000; far beyond what a VLM looks at, far below a decompression bomb
ALLOWED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
TASKS = ("caption", "query", "detect", "point")
TINY_MARKER = "rigfit-tiny-vlm.json"


class ImageError(ValueError):
    """An upload that is not an acceptable image; the message is for the user."""


@dataclass(frozen=True)
class CheckedImage:
    sha256: str
    format: str
    width: int
    height: int
    image: Any  # PIL.Image.Image, RGB, fully decoded


def check_image(data: bytes) -> CheckedImage:
    """JPEG, PNG or WebP only, at most 10 MB and MAX_PIXELS pixels, verified and decoded with Pillow."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageError("The file is empty.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageError(f"The file is {len(data) / 1e6:.1f} MB; the limit is {MAX_UPLOAD_BYTES // (1024 * 1024)} MB.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                fmt = probe.format or ""
                width, height = probe.size
                if fmt not in ALLOWED_FORMATS:
                    raise ImageError(f"{fmt or 'This format'} is not accepted; upload a JPEG, PNG or WebP image.")
                if width * height > MAX_PIXELS:
                    raise ImageError(f"The image is {width}x{height} pixels; the limit is {MAX_PIXELS:,} pixels.")
                probe.verify()
            with Image.open(io.BytesIO(data)) as full:
                full.load()
                image = full.convert("RGB")
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"This is not a readable JPEG, PNG or WebP image ({type(exc).__name__}).") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError("The image is damaged or truncated and cannot be read.") from exc
    return CheckedImage(hashlib.sha256(data).hexdigest(), fmt, width, height, image)


class ImageEmbeddingCache:
    """Encoded images by SHA-256, least recently used evicted first; safe across threads."""

    def __init__(self, max_entries: int = 32) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Any | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
            self.misses += 1
            return None

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items


@dataclass(frozen=True)
class VisionAnswer:
    task: str
    text: str
    objects: list[dict[str, float]]  # detect: x_min/y_min/x_max/y_max; point: x/y (0..1)
    cache_hit: bool
    encode_ms: float
    answer_ms: float


# -- the tiny VLM -------------------------------------------------------------------------------------------------


def _tiny_modules(config: dict[str, Any]) -> tuple[Any, Any]:
    """The image encoder (patch embedding + a small transformer) and the projection into the text width."""
    from torch import nn

    width, patch = config["vision_width"], config["patch_size"]
    layer = nn.TransformerEncoderLayer(width, nhead=2, dim_feedforward=width * 2, batch_first=True)
    encoder = nn.ModuleDict(
        {
            "patch": nn.Conv2d(3, width, kernel_size=patch, stride=patch),
            "blocks": nn.TransformerEncoder(layer, num_layers=config["vision_layers"], enable_nested_tensor=False),
        }
    )
    projection = nn.Sequential(nn.Linear(width, config["text_hidden"]), nn.GELU())
    return encoder, projection


def save_tiny_vlm(path: Path, *, image_size: int = 64, vision_width: int = 64, vision_layers: int = 2, seed: int = 0):
    """Write a randomly initialised tiny VLM (encoder, projection, Gemma 3 text decoder, byte tokenizer) to `path`."""
    import torch
    from safetensors.torch import save_file

    from inference.tiny import make_byte_tokenizer, make_tiny_causal_lm

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = make_byte_tokenizer()
    text = make_tiny_causal_lm(len(tokenizer), seed=seed)
    text.save_pretrained(path / "text")
    tokenizer.save_pretrained(path / "text")
    config = {
        "image_size": image_size,
        "patch_size": 8,
        "vision_width": vision_width,
        "vision_layers": vision_layers,
        "text_hidden": text.config.hidden_size,
    }
    torch.manual_seed(seed)
    encoder, projection = _tiny_modules(config)
    state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    state |= {f"projection.{k}": v for k, v in projection.state_dict().items()}
    save_file({k: v.contiguous() for k, v in state.items()}, str(path / "vision.safetensors"))
    (path / TINY_MARKER).write_text(json.dumps(config))
    return path


class TinyVLM:
    def __init__(self, path: Path) -> None:
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.config = json.loads((path / TINY_MARKER).read_text())
        self.encoder, self.projection = _tiny_modules(self.config)
        state = load_file(str(path / "vision.safetensors"))
        self.encoder.load_state_dict({k[8:]: v for k, v in state.items() if k.startswith("encoder.")})
        self.projection.load_state_dict({k[11:]: v for k, v in state.items() if k.startswith("projection.")})
        self.encoder.eval()
        self.projection.eval()
        self.text = AutoModelForCausalLM.from_pretrained(path / "text", dtype=torch.float32).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(path / "text")
        self.encoder_calls = 0

    def encode_image(self, image: Any) -> Any:
        import numpy as np
        import torch

        self.encoder_calls += 1
        size = self.config["image_size"]
        pixels = np.asarray(image.resize((size, size)), dtype=np.float32) / 127.5 - 1.0
        x = torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0)
        with torch.inference_mode():
            patches = self.encoder["patch"](x).flatten(2).transpose(1, 2)
            return self.projection(self.encoder["blocks"](patches))  # [1, n_patches, text_hidden]

    def generate(self, embedding: Any, prompt: str, max_new_tokens: int) -> str:
        import torch

        ids = self.tokenizer(prompt, return_tensors="pt")["input_ids"]
        out: list[int] = []
        with torch.inference_mode():
            embeds = torch.cat([embedding, self.text.get_input_embeddings()(ids)], dim=1)
            for _ in range(max_new_tokens):
                logits = self.text(inputs_embeds=embeds).logits[0, -1]
                token = int(torch.argmax(logits))
                out.append(token)
                embeds = torch.cat([embeds, self.text.get_input_embeddings()(torch.tensor([[token]]))], dim=1)
        return self.tokenizer.decode(out, skip_special_tokens=True)

    def answer(self, embedding: Any, task: str, text: str, max_new_tokens: int) -> tuple[str, list[dict[str, float]]]:
        prompt = {
            "caption": "Describe the image.",
            "query": text,
            "detect": f"Detect: {text}",
            "point": f"Point: {text}",
        }
        answer = self.generate(embedding, prompt[task], max_new_tokens)
        objects: list[dict[str, float]] = []
        if task in ("detect", "point"):  # read coordinates off the projected patch scores (random in tests)
            import torch

            scores = embedding[0].norm(dim=-1)
            side = int(scores.numel() ** 0.5)
            best = int(torch.argmax(scores))
            x, y = (best % side + 0.5) / side, (best // side + 0.5) / side
            if task == "point":
                objects = [{"x": x, "y": y}]
            else:
                half = 0.5 / side
                objects = [{"x_min": x - half, "y_min": y - half, "x_max": x + half, "y_max": y + half}]
        return answer, objects


class MoondreamVLM:
    """Moondream 2 through its own API (revision 2025-01-09 and later: caption/query/detect/point)."""

    def __init__(self, path: Path) -> None:
        from transformers import AutoModelForCausalLM

        self.model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True, local_files_only=True)
        self.encoder_calls = 0

    def encode_image(self, image: Any) -> Any:
        self.encoder_calls += 1
        return self.model.encode_image(image)

    def answer(self, embedding: Any, task: str, text: str, max_new_tokens: int) -> tuple[str, list[dict[str, float]]]:
        m = self.model
        if task == "caption":
            return str(m.caption(embedding, length="short")["caption"]), []
        if task == "query":
            return str(m.query(embedding, text)["answer"]), []
        if task == "detect":
            objects = list(m.detect(embedding, text)["objects"])
            return f"{len(objects)} found", objects
        points = list(m.point(embedding, text)["points"])
        return f"{len(points)} found", points


def load_vlm(path: Path) -> Any:
    path = Path(path).expanduser()
    if (path / TINY_MARKER).exists():
        return TinyVLM(path)
    config = path / "config.json"
    if config.exists() and "moondream" in json.loads(config.read_text()).get("model_type", ""):
        return MoondreamVLM(path)
    raise ImageError(f"{path} is not a Moondream 2 directory or a rigfit tiny VLM")


class VisionEngine:
    def __init__(self, model: Any, *, cache_entries: int = 32) -> None:
        self.model = model
        self.cache = ImageEmbeddingCache(cache_entries)
        self._lock = threading.Lock()

    def ask(self, image: CheckedImage, task: str, text: str = "", max_new_tokens: int = 16) -> VisionAnswer:
        if task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}")
        with self._lock:
            started = time.perf_counter()
            embedding = self.cache.get(image.sha256)
            hit = embedding is not None
            if embedding is None:
                embedding = self.model.encode_image(image.image)
                self.cache.put(image.sha256, embedding)
            encoded = time.perf_counter()
            answer, objects = self.model.answer(embedding, task, text, max_new_tokens)
            done = time.perf_counter()
        return VisionAnswer(task, answer, objects, hit, (encoded - started) * 1000, (done - encoded) * 1000)


_vision: VisionEngine | None = None
_vision_error = ""
_vision_lock = threading.Lock()


def get_vision() -> VisionEngine | None:
    """The configured VLM, loaded on first use; None when none is configured or it failed (see vision_status)."""
    global _vision, _vision_error
    from inference.conf import load_settings

    settings = load_settings()
    with _vision_lock:
        if _vision is None and settings.vlm_path and not _vision_error:
            try:
                _vision = VisionEngine(load_vlm(settings.vlm_path), cache_entries=settings.image_cache_entries)
            except Exception as exc:  # reported on the page
                _vision_error = f"{type(exc).__name__}: {exc}"
        return _vision


def set_vision(engine: VisionEngine | None) -> None:
    global _vision, _vision_error
    with _vision_lock:
        _vision, _vision_error = engine, ""


def vision_status() -> dict[str, Any]:
    from inference.conf import load_settings

    settings = load_settings()
    configured = _vision is not None or settings.vlm_path is not None
    return {
        "configured": configured,
        "path": str(settings.vlm_path) if settings.vlm_path else "",
        "error": _vision_error,
        "tasks": TASKS,
        "max_upload_mb": MAX_UPLOAD_BYTES // (1024 * 1024),
    }
