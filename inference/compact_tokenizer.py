"""A compact, exact stand-in for the Rust `tokenizers` BPE tokenizer of SentencePiece-style models (Gemma 3).

The Rust tokenizer holds Gemma 3's 262,144 vocabulary entries and 514,906 merges in hash maps: about 100 MB resident.
This one keeps them in numpy arrays (about 15 MB): the vocabulary as one UTF-8 blob with offsets, the merges as a
sorted int64 key array (left * V + right) with rank and new-id arrays, looked up with `np.searchsorted`. It replicates
exactly, and only, this pipeline of `tokenizers` 0.23:

- added tokens (none with lstrip, rstrip, single_word or normalized) split off first, leftmost-longest;
- the normalizer `Replace(" ", "▁")`, then a no-op pre-tokenizer (none, or `Split(" ")` which finds no space left);
- the BPE model with byte fallback (`<0xXX>` tokens), unk fusing, no dropout, no prefix/suffix, no ignore_merges:
  merges applied lowest rank first, leftmost on ties, exactly as `Word::merge_all`;
- a `TemplateProcessing` post-processor (e.g. `<bos>` first) or none;
- the decoder `Sequence[Replace("▁", " "), ByteFallback, Fuse]`.

`supports(config)` says False for anything else, so other models keep the Rust tokenizer. The arrays are built from
tokenizer.json once and cached next to it as one `.npz` (no pickle), which later loads without parsing the JSON.
"""

from __future__ import annotations

import heapq
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

CACHE_NAME = "rigfit-tokenizer-v1.npz"
_FORMAT = 1
_SPACE = "\u2581"
_DECODER = [
    {"type": "Replace", "pattern": {"String": _SPACE}, "content": " "},
    {"type": "ByteFallback"},
    {"type": "Fuse"},
]
_HEX = set("0123456789abcdefABCDEF")


def _rust_byte(token: str) -> int:
    """The byte ByteFallback reads from a (decoder-replaced) token, or -1: `<0xXX>`, 6 bytes, parsed as Rust does."""
    raw = token.encode("utf-8")
    if len(raw) != 6 or not raw.startswith(b"<0x") or not raw.endswith(b">"):
        return -1
    digits = raw[3:5].decode("utf-8", errors="replace")
    if len(digits) == 2 and digits[0] == "+":  # u8::from_str_radix accepts a leading '+'
        digits = digits[1:]
    if not digits or not all(ch in _HEX for ch in digits):
        return -1
    return int(digits, 16)


def _merge_pairs(merges: list[Any]) -> list[tuple[str, str]] | None:
    pairs = []
    for merge in merges:
        if isinstance(merge, str):
            parts = merge.split(" ")
            if len(parts) != 2:
                return None
            pairs.append((parts[0], parts[1]))
        elif isinstance(merge, list) and len(merge) == 2 and all(isinstance(part, str) for part in merge):
            pairs.append((merge[0], merge[1]))
        else:
            return None
    return pairs


def _template_ids(processor: Any) -> tuple[list[int], list[int]] | None:
    """The ids a TemplateProcessing puts before and after a single sequence, or None if it is anything else."""
    if processor is None:
        return [], []
    if not isinstance(processor, dict) or processor.get("type") != "TemplateProcessing":
        return None
    specials = processor.get("special_tokens") or {}
    before: list[int] = []
    after: list[int] = []
    seen_sequence = False
    for piece in processor.get("single") or []:
        if not isinstance(piece, dict) or len(piece) != 1:
            return None
        if "Sequence" in piece:
            if piece["Sequence"].get("id") != "A" or seen_sequence:
                return None
            seen_sequence = True
        elif "SpecialToken" in piece:
            special = specials.get(piece["SpecialToken"].get("id"))
            if not special or not all(isinstance(i, int) for i in special.get("ids", [])):
                return None
            (after if seen_sequence else before).extend(special["ids"])
        else:
            return None
    return (before, after) if seen_sequence else None


def supports(config: dict[str, Any]) -> bool:
    """Whether this class tokenizes and decodes exactly like `tokenizers` would with this tokenizer.json."""
    try:
        return _check(config) is None
    except Exception:
        return False


def _check(config: dict[str, Any]) -> str | None:
    """None if supported, else the reason it is not."""
    if config.get("truncation") is not None or config.get("padding") is not None:
        return "truncation or padding"
    model = config.get("model") or {}
    if model.get("type") != "BPE":
        return "not BPE"
    if model.get("dropout") is not None:
        return "dropout"
    if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
        return "subword prefix or suffix"
    if model.get("ignore_merges") or not model.get("byte_fallback"):
        return "ignore_merges or no byte fallback"
    if config.get("normalizer") != {"type": "Replace", "pattern": {"String": " "}, "content": _SPACE}:
        return "normalizer"
    pre = config.get("pre_tokenizer")
    if pre is not None and pre != {
        "type": "Split",
        "pattern": {"String": " "},
        "behavior": "MergedWithPrevious",
        "invert": False,
    }:
        return "pre_tokenizer"  # Split on " " finds no space once the normalizer replaced them all
    if config.get("decoder") != {"type": "Sequence", "decoders": _DECODER}:
        return "decoder"
    if _template_ids(config.get("post_processor")) is None:
        return "post_processor"
    vocab = model.get("vocab")
    if not isinstance(vocab, dict) or sorted(vocab.values()) != list(range(len(vocab))):
        return "vocab ids not 0..V-1"
    unk = model.get("unk_token")
    if unk is not None and unk not in vocab:
        return "unk token not in vocab"
    if _merge_pairs(model.get("merges") or []) is None:
        return "merges format"
    for token in config.get("added_tokens") or []:
        if token.get("lstrip") or token.get("rstrip") or token.get("single_word") or token.get("normalized"):
            return "added token flags"
        if vocab.get(token.get("content")) != token.get("id") or not token.get("content"):
            return "added token not in the model vocab"
    return None


def build_arrays(config: dict[str, Any]) -> dict[str, np.ndarray]:
    model = config["model"]
    vocab: dict[str, int] = model["vocab"]
    size = len(vocab)
    tokens = [""] * size
    for token, i in vocab.items():
        tokens[i] = token
    encoded = [token.encode("utf-8") for token in tokens]
    offsets = np.zeros(size + 1, dtype=np.int64)
    np.cumsum([len(raw) for raw in encoded], out=offsets[1:])
    blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    sorted_ids = np.array(sorted(range(size), key=encoded.__getitem__), dtype=np.int32)

    singles = sorted((ord(token), i) for token, i in vocab.items() if len(token) == 1)
    char_cps = np.array([cp for cp, _ in singles], dtype=np.int64)
    char_ids = np.array([i for _, i in singles], dtype=np.int32)
    byte_ids = np.array([vocab.get(f"<0x{b:02X}>", -1) for b in range(256)], dtype=np.int32)
    byte_of = np.array([_rust_byte(token.replace(_SPACE, " ")) for token in tokens], dtype=np.int16)

    merge_map: dict[int, tuple[int, int]] = {}
    for rank, (left, right) in enumerate(_merge_pairs(model.get("merges") or []) or []):
        merge_map[vocab[left] * size + vocab[right]] = (rank, vocab[left + right])  # later duplicates win, as in Rust
    keys = np.array(sorted(merge_map), dtype=np.int64)
    ranks = np.array([merge_map[int(k)][0] for k in keys], dtype=np.int32)
    new_ids = np.array([merge_map[int(k)][1] for k in keys], dtype=np.int32)

    added = config.get("added_tokens") or []
    special = np.zeros(size, dtype=np.bool_)
    special_contents = {token["content"] for token in added if token.get("special")}
    for token, i in vocab.items():
        if token in special_contents:
            special[i] = True
    before, after = _template_ids(config.get("post_processor")) or ([], [])
    unk = model.get("unk_token")
    meta = {
        "format": _FORMAT,
        "unk_id": vocab[unk] if unk is not None else -1,
        "fuse_unk": bool(model.get("fuse_unk")),
        "before": before,
        "after": after,
    }
    return {
        "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
        "blob": blob,
        "offsets": offsets,
        "sorted_ids": sorted_ids,
        "char_cps": char_cps,
        "char_ids": char_ids,
        "byte_ids": byte_ids,
        "byte_of": byte_of,
        "merge_keys": keys,
        "merge_ranks": ranks,
        "merge_new": new_ids,
        "added_ids": np.array([token["id"] for token in added], dtype=np.int32),
        "special": special,
        "source": np.array([0, 0], dtype=np.int64),
    }


def _source_stamp(path: Path) -> np.ndarray:
    stat = path.stat()
    return np.array([stat.st_size, stat.st_mtime_ns], dtype=np.int64)


class CompactTokenizer:
    """Encode, decode, length, eos id: what the engine needs of a tokenizer (the same as `FastTokenizer`)."""

    def __init__(self, arrays: dict[str, np.ndarray], *, eos_token_id: int | None = None) -> None:
        meta = json.loads(bytes(arrays["meta"]).decode())
        if meta.get("format") != _FORMAT:
            raise ValueError("unknown compact tokenizer format")
        self._blob = arrays["blob"].tobytes()
        self._offsets = arrays["offsets"]
        self._sorted_ids = arrays["sorted_ids"]
        self._char_cps = arrays["char_cps"]
        self._char_ids = arrays["char_ids"]
        self._byte_ids = [int(i) for i in arrays["byte_ids"]]
        self._byte_of = arrays["byte_of"]
        self._merge_keys = arrays["merge_keys"]
        self._merge_ranks = arrays["merge_ranks"]
        self._merge_new = arrays["merge_new"]
        self._n_merges = len(self._merge_keys)
        self._special = arrays["special"]
        self._size = len(self._offsets) - 1
        self._unk_id = int(meta["unk_id"])
        self._fuse_unk = bool(meta["fuse_unk"])
        self._before = [int(i) for i in meta["before"]]
        self._after = [int(i) for i in meta["after"]]
        self._added: dict[str, int] = {self._token(int(i)): int(i) for i in arrays["added_ids"]}
        lengths: dict[str, set[int]] = {}
        for content in self._added:
            lengths.setdefault(content[0], set()).add(len(content))
        self._added_lengths = {first: sorted(ls, reverse=True) for first, ls in lengths.items()}
        self._added_start = (
            re.compile("[" + "".join(re.escape(ch) for ch in sorted(lengths)) + "]") if lengths else None
        )
        self.eos_token_id = eos_token_id

    supports = staticmethod(supports)

    # -- construction ------------------------------------------------------------------------------------------
    @classmethod
    def from_dir(cls, model_dir: Path) -> CompactTokenizer:
        """From the cached arrays next to tokenizer.json (built first if missing or stale); ValueError if the
        tokenizer is not one this class replicates."""
        json_path = model_dir / "tokenizer.json"
        cache_path = model_dir / CACHE_NAME
        arrays = _load_cache(cache_path, json_path)
        if arrays is None:
            config = json.loads(json_path.read_text(encoding="utf-8"))
            reason = _check(config)
            if reason is not None:
                raise ValueError(f"compact tokenizer does not replicate this tokenizer.json: {reason}")
            try:
                arrays = build_arrays(config)
            except KeyError as exc:  # a merge naming a token the vocabulary lacks: the Rust loader refuses it too
                raise ValueError(f"compact tokenizer cannot build this tokenizer.json: {exc!r}") from exc
            del config
            arrays["source"] = _source_stamp(json_path)
            _write_cache(cache_path, arrays)
        tokenizer = cls(arrays)
        tokenizer.eos_token_id = _eos_token_id(model_dir, tokenizer)
        return tokenizer

    # -- lookups -----------------------------------------------------------------------------------------------
    def _token(self, i: int) -> str:
        return self._blob[self._offsets[i] : self._offsets[i + 1]].decode("utf-8")

    def token_to_id(self, token: str) -> int | None:
        if token in self._added:
            return self._added[token]
        raw = token.encode("utf-8")
        lo, hi = 0, self._size
        while lo < hi:  # binary search over the ids sorted by their bytes
            mid = (lo + hi) // 2
            i = int(self._sorted_ids[mid])
            if self._blob[self._offsets[i] : self._offsets[i + 1]] < raw:
                lo = mid + 1
            else:
                hi = mid
        if lo < self._size:
            i = int(self._sorted_ids[lo])
            if self._blob[self._offsets[i] : self._offsets[i + 1]] == raw:
                return i
        return None

    def id_to_token(self, i: int) -> str | None:
        return self._token(i) if 0 <= i < self._size else None

    def __len__(self) -> int:
        return self._size

    # -- encoding ----------------------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        ids = list(self._before)
        for piece, added_id in self._split_added(text):
            if added_id is not None:
                ids.append(added_id)
            else:
                ids.extend(self._bpe(piece.replace(" ", _SPACE)))
        ids.extend(self._after)
        return ids

    def __call__(self, text: str, return_tensors: str | None = None) -> dict[str, Any]:
        ids = self.encode(text)
        if return_tensors == "pt":
            import torch

            return {"input_ids": torch.tensor([ids], dtype=torch.long)}
        return {"input_ids": ids}

    def _split_added(self, text: str) -> list[tuple[str, int | None]]:
        """The text cut around its added tokens, leftmost-longest and non-overlapping (the Aho-Corasick matching of
        `AddedVocabulary`), empty pieces dropped."""
        if self._added_start is None:
            return [(text, None)] if text else []
        pieces: list[tuple[str, int | None]] = []
        start = pos = 0
        while True:
            found = self._added_start.search(text, pos)
            if found is None:
                break
            at = found.start()
            for length in self._added_lengths[text[at]]:
                added_id = self._added.get(text[at : at + length])
                if added_id is not None:
                    if start < at:
                        pieces.append((text[start:at], None))
                    pieces.append((text[at : at + length], added_id))
                    start = pos = at + length
                    break
            else:
                pos = at + 1
        if start < len(text):
            pieces.append((text[start:], None))
        return pieces

    def _merge(self, left: int, right: int, memo: dict[int, tuple[int, int] | None]) -> tuple[int, int] | None:
        """The (rank, new id) of merging this pair, or None."""
        key = left * self._size + right
        if key in memo:
            return memo[key]
        at = int(self._merge_keys.searchsorted(key))
        found = None
        if at < self._n_merges and int(self._merge_keys[at]) == key:
            found = int(self._merge_ranks[at]), int(self._merge_new[at])
        memo[key] = found
        return found

    def _symbols(self, word: str) -> list[int]:
        """`BPE::merge_word` before merging: one symbol per character, its `<0xXX>` bytes if it is not in the
        vocabulary, else unk (fused)."""
        cps = np.frombuffer(word.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        at = np.minimum(np.searchsorted(self._char_cps, cps), max(len(self._char_cps) - 1, 0))
        if len(self._char_cps):
            found = self._char_cps[at] == cps
            ids = self._char_ids[at]
        else:
            found = np.zeros(len(cps), dtype=np.bool_)
            ids = np.zeros(len(cps), dtype=np.int32)
        if found.all():
            return ids.tolist()
        symbols: list[int] = []
        unk: int | None = None  # pending unk's count (the Rust code tracks its byte length; only its presence counts)
        for ch, hit, i in zip(word, found.tolist(), ids.tolist(), strict=True):
            if hit:
                if unk is not None:
                    symbols.append(self._unk_id)
                    unk = None
                symbols.append(i)
                continue
            fallback = [self._byte_ids[b] for b in ch.encode("utf-8")]
            if all(b >= 0 for b in fallback):
                symbols.extend(fallback)  # note: a pending unk is not flushed first, as in Rust
                continue
            if self._unk_id >= 0:
                if unk is not None and not self._fuse_unk:
                    symbols.append(self._unk_id)
                unk = 1
        if unk is not None:
            symbols.append(self._unk_id)
        return symbols

    def _bpe(self, word: str) -> list[int]:
        """`Word::merge_all`: the lowest-ranked pair first, the leftmost on ties, stale queue entries skipped."""
        if not word:
            return []
        symbols = self._symbols(word)
        n = len(symbols)
        if n < 2:
            return symbols
        size = self._size
        keys = self._merge_keys
        pair_keys = np.asarray(symbols[:-1], dtype=np.int64) * size + np.asarray(symbols[1:], dtype=np.int64)
        at = np.minimum(np.searchsorted(keys, pair_keys), len(keys) - 1) if len(keys) else None
        if at is None:
            return symbols
        hit = np.flatnonzero(keys[at] == pair_keys)
        ranks = self._merge_ranks[at[hit]].tolist()
        new_ids = self._merge_new[at[hit]].tolist()
        queue = list(zip(ranks, hit.tolist(), new_ids, strict=True))
        heapq.heapify(queue)
        prev = list(range(-1, n - 1))
        nxt = list(range(1, n + 1))
        nxt[-1] = -1
        alive = [True] * n
        memo: dict[int, tuple[int, int] | None] = dict(
            zip(pair_keys[hit].tolist(), zip(ranks, new_ids, strict=True), strict=True)
        )
        while queue:
            _, pos, new_id = heapq.heappop(queue)
            if not alive[pos]:
                continue
            right = nxt[pos]
            if right == -1:
                continue
            current = self._merge(symbols[pos], symbols[right], memo)
            if current is None or current[1] != new_id:  # an expired entry (Rust compares the new id only)
                continue
            symbols[pos] = new_id
            alive[right] = False
            after = nxt[right]
            nxt[pos] = after
            if after != -1:
                prev[after] = pos
            before = prev[pos]
            if before >= 0:
                found = self._merge(symbols[before], new_id, memo)
                if found is not None:
                    heapq.heappush(queue, (found[0], before, found[1]))
            if after != -1:
                found = self._merge(new_id, symbols[after], memo)
                if found is not None:
                    heapq.heappush(queue, (found[0], pos, found[1]))
        return [symbol for symbol, live in zip(symbols, alive, strict=True) if live]

    # -- decoding ----------------------------------------------------------------------------------------------
    def decode(self, ids: Any, skip_special_tokens: bool = True) -> str:
        """`Tokenizer::decode`: unknown ids dropped, special ones too if asked, then Replace("▁", " "), ByteFallback
        (a run of byte tokens as UTF-8, or one U+FFFD per byte if invalid) and Fuse."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        out: list[str] = []
        pending = bytearray()
        size, special, byte_of = self._size, self._special, self._byte_of
        for i in ids:
            i = int(i)
            if not 0 <= i < size or (skip_special_tokens and special[i]):
                continue
            byte = int(byte_of[i])
            if byte >= 0:
                pending.append(byte)
                continue
            if pending:
                out.append(_bytes_text(pending))
                pending.clear()
            out.append(self._token(i).replace(_SPACE, " "))
        if pending:
            out.append(_bytes_text(pending))
        return "".join(out)


def _bytes_text(raw: bytearray) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "\ufffd" * len(raw)


def _eos_token_id(model_dir: Path, tokenizer: CompactTokenizer) -> int | None:
    config_path = model_dir / "tokenizer_config.json"
    if not config_path.exists():
        return None
    eos = json.loads(config_path.read_text()).get("eos_token")
    if isinstance(eos, dict):
        eos = eos.get("content")
    return tokenizer.token_to_id(eos) if isinstance(eos, str) else None


def _load_cache(cache_path: Path, json_path: Path) -> dict[str, np.ndarray] | None:
    if not cache_path.exists():
        return None
    try:
        with np.load(cache_path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, KeyError):
        return None
    if json_path.exists() and not np.array_equal(arrays.get("source"), _source_stamp(json_path)):
        return None  # tokenizer.json changed since the cache was built
    return arrays


def _write_cache(cache_path: Path, arrays: dict[str, np.ndarray]) -> None:
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=cache_path.parent)
    except OSError:
        return  # a read-only model directory: build in memory each time
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600
        os.replace(tmp, cache_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
