"""The model's tokenizer from its GGUF metadata: SentencePiece-style ("llama" in `tokenizer.ggml.model`) with scores,
as llama.cpp's `llm_tokenizer_spm` (src/llama-vocab.cpp) runs it:

- control and user-defined tokens found in the text are split off first, longest first;
- spaces become "▁" (U+2581); a space is prepended only where `tokenizer.ggml.add_space_prefix` says so;
- each remaining piece starts as one symbol per character; the adjacent pair whose concatenation is a token with
  the highest score merges first (leftmost on ties), until no pair is a token;
- a symbol that is not a token (a character outside the vocabulary) becomes its UTF-8 bytes' `<0xXX>` tokens;
- `<bos>` first where `tokenizer.ggml.add_bos_token` says so.

Decoding maps "▁" back to spaces and byte tokens to their bytes; control tokens are left out when asked.
"""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
_SPACE = "\u2581"
# Tokens llama.cpp also ends a generation on for this family (llama-vocab.cpp: the end-of-generation set)
_END_OF_TURN = ("<end_of_turn>", "<|eot_id|>", "<|im_end|>")


class TokenizerError(ValueError):
    pass


class GGUFTokenizer:
    def __init__(self, metadata: dict[str, Any]) -> None:
        model = metadata.get("tokenizer.ggml.model")
        if model != "llama":
            raise TokenizerError(f"tokenizer.ggml.model {model!r}: only SentencePiece-style ('llama') is supported")
        self.tokens: list[str] = list(metadata["tokenizer.ggml.tokens"])
        n = len(self.tokens)
        self.scores = np.asarray(metadata.get("tokenizer.ggml.scores", np.zeros(n)), dtype=np.float32)
        self.types = np.asarray(metadata.get("tokenizer.ggml.token_type", np.full(n, NORMAL)), dtype=np.int32)
        self.ids = {token: i for i, token in enumerate(self.tokens)}
        self.bos_token_id = _int_or_none(metadata.get("tokenizer.ggml.bos_token_id"))
        self.eos_token_id = _int_or_none(metadata.get("tokenizer.ggml.eos_token_id"))
        self.add_bos = bool(metadata.get("tokenizer.ggml.add_bos_token", True)) and self.bos_token_id is not None
        self.add_space_prefix = bool(metadata.get("tokenizer.ggml.add_space_prefix", False))
        self.unk_id = _int_or_none(metadata.get("tokenizer.ggml.unknown_token_id"))
        self.byte_ids = [self.ids.get(f"<0x{b:02X}>", -1) for b in range(256)]
        special = np.flatnonzero((self.types == CONTROL) | (self.types == USER_DEFINED))
        self._special = {self.tokens[i]: int(i) for i in special if self.tokens[i]}
        self._special_first: dict[str, list[str]] = {}
        for text in sorted(self._special, key=len, reverse=True):
            self._special_first.setdefault(text[0], []).append(text)
        self.byte_of = {i: b for b, i in enumerate(self.byte_ids) if i >= 0}
        self.end_ids = {i for i in (self.eos_token_id,) if i is not None}
        self.end_ids.update(self.ids[t] for t in _END_OF_TURN if t in self.ids)

    def __len__(self) -> int:
        return len(self.tokens)

    # -- encoding ----------------------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        out = [self.bos_token_id] if self.add_bos else []
        first = True
        for piece, special in self._split_special(text):
            if special is not None:
                out.append(special)
                continue
            piece = piece.replace(" ", _SPACE)
            if first and self.add_space_prefix:
                piece = _SPACE + piece
            out.extend(self._spm(piece))
            first = False
        return out

    def __call__(self, text: str, return_tensors: str | None = None) -> dict[str, Any]:
        ids = self.encode(text)
        if return_tensors == "pt":
            import torch

            return {"input_ids": torch.tensor([ids], dtype=torch.long)}
        return {"input_ids": ids}

    def _split_special(self, text: str) -> list[tuple[str, int | None]]:
        parts: list[tuple[str, int | None]] = []
        start = i = 0
        while i < len(text):
            for candidate in self._special_first.get(text[i], ()):
                if text.startswith(candidate, i):
                    if start < i:
                        parts.append((text[start:i], None))
                    parts.append((candidate, self._special[candidate]))
                    i += len(candidate)
                    start = i
                    break
            else:
                i += 1
        if start < len(text):
            parts.append((text[start:], None))
        return parts

    def _spm(self, text: str) -> list[int]:
        symbols = list(text)
        if not symbols:
            return []
        prev = list(range(-1, len(symbols) - 1))
        nxt = [*range(1, len(symbols)), -1]
        heap: list[tuple[float, int, int, str]] = []

        def push(left: int, right: int) -> None:
            if left < 0 or right < 0:
                return
            merged = symbols[left] + symbols[right]
            token = self.ids.get(merged)
            if token is not None:
                heapq.heappush(heap, (-float(self.scores[token]), left, right, merged))

        for i in range(len(symbols) - 1):
            push(i, i + 1)
        while heap:
            _, left, right, merged = heapq.heappop(heap)
            if nxt[left] != right or symbols[left] + symbols[right] != merged:
                continue  # one side merged elsewhere since this pair was queued
            symbols[left], symbols[right] = merged, ""
            nxt[left] = nxt[right]
            if nxt[right] >= 0:
                prev[nxt[right]] = left
            push(prev[left], left)
            push(left, nxt[left])
        out: list[int] = []
        i = 0
        while i >= 0:
            token = self.ids.get(symbols[i])
            if token is not None:
                out.append(token)
            else:
                for byte in symbols[i].encode("utf-8"):
                    out.append(self.byte_ids[byte] if self.byte_ids[byte] >= 0 else self.unk_id or 0)
            i = nxt[i]
        return out

    # -- decoding ----------------------------------------------------------------------------------------------
    def decode(self, ids: Any, skip_special_tokens: bool = True) -> str:
        raw = bytearray()
        for i in ids:
            i = int(i)
            kind = int(self.types[i])
            if kind == BYTE:
                raw.append(self.byte_of[i])
            elif kind in (CONTROL, UNKNOWN, UNUSED) and skip_special_tokens:
                continue
            else:
                raw.extend(self.tokens[i].replace(_SPACE, " ").encode("utf-8"))
        return raw.decode("utf-8", errors="replace")


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)
