"""A thin adapter over a `tokenizers.Tokenizer`, loaded straight from tokenizer.json.

transformers' tokenizer wrapper holds about 300 MB more for Gemma 3's 262k vocabulary (Python-side copies that the
allocator keeps even once freed); the Rust tokenizer alone, with freed pages handed back, about 100 MB. The engine
needs only what this class offers: encode with the model's special tokens, decode, the end-of-sequence id.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def compact_enabled() -> bool:
    """RIGFIT_DEMO_COMPACT_TOKENIZER (default on): the numpy tokenizer in place of the Rust one where it is exact."""
    return os.environ.get("RIGFIT_DEMO_COMPACT_TOKENIZER", "1").strip().lower() not in {"0", "false", "no", "off"}


class FastTokenizer:
    def __init__(self, backend: Any, *, eos_token_id: int | None) -> None:
        self.backend = backend
        self.eos_token_id = eos_token_id

    @classmethod
    def from_dir(cls, model_dir: Path) -> Any:
        """The compact tokenizer (inference/compact_tokenizer.py, ~15 MB instead of ~100 MB for Gemma 3) where it
        replicates this tokenizer.json exactly and is enabled, else the Rust one."""
        if compact_enabled():
            from inference.compact_tokenizer import CompactTokenizer

            try:
                return CompactTokenizer.from_dir(model_dir)
            except ValueError as exc:
                logger.info("%s; using the Rust tokenizer", exc)
        return cls.from_dir_rust(model_dir)

    @classmethod
    def from_dir_rust(cls, model_dir: Path) -> FastTokenizer:
        from tokenizers import Tokenizer

        backend = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        eos_token_id = None
        config_path = model_dir / "tokenizer_config.json"
        if config_path.exists():
            eos = json.loads(config_path.read_text()).get("eos_token")
            if isinstance(eos, dict):
                eos = eos.get("content")
            if isinstance(eos, str):
                eos_token_id = backend.token_to_id(eos)
        return cls(backend, eos_token_id=eos_token_id)

    def __call__(self, text: str, return_tensors: str | None = None) -> dict[str, Any]:
        ids = self.backend.encode(text).ids
        if return_tensors == "pt":
            import torch

            return {"input_ids": torch.tensor([ids], dtype=torch.long)}
        return {"input_ids": ids}

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def __len__(self) -> int:
        return self.backend.get_vocab_size()
