"""Tiny models built in-process, for tests and CI where no weights can be downloaded.

- `write_tiny_gguf`: a 6-layer Gemma 3 GGUF file with random weights in the block types the packaged model uses
  (Q8_0 embedding, Q5_0 and Q8_0 projections, Q4_K and Q6_K down and output projections), and a small
  SentencePiece-style vocabulary (byte tokens plus a few merges): it goes through the engine's real load path.
- `reference_model`: transformers' Gemma3ForCausalLM holding the same weights as that file (dequantized by the gguf
  package), and `ReferenceStep`, the forward-pass interface of GGUFModel over any transformers causal LM: the
  reference the native step is held to in tests. transformers is imported only here, and only by tests.
- `make_byte_tokenizer` / `make_tiny_causal_lm`: a byte-level tokenizer and a random tiny transformers model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

TINY = {
    "layers": 6,  # the sixth layer is the global one (five sliding-window layers to one)
    "hidden": 64,
    "ffn": 256,
    "heads": 2,
    "kv_heads": 1,
    "head_dim": 128,
    "window": 8,
    "eps": 1e-6,
    "rope_base": 1_000_000.0,
}
_MERGES = ["▁", "t", "h", "e", "a", "n", "d", "th", "he", "the", "▁the", "an", "and", "▁and", "▁a"]


def tiny_vocabulary() -> tuple[list[str], list[float], list[int]]:
    """(tokens, scores, types): <pad> <eos> <bos> <unk> <end_of_turn>, the 256 byte tokens, a few merges."""
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "<end_of_turn>"]
    types = [3, 3, 3, 2, 3]  # CONTROL, UNKNOWN
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [6] * 256  # BYTE
    tokens += _MERGES
    types += [1] * len(_MERGES)
    scores = [0.0] * (len(tokens) - len(_MERGES)) + [-float(i) for i in range(len(_MERGES))]
    return tokens, scores, types


def _random_blocks(qtype: Any, rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """Random bytes of valid blocks: the k-quants' fields drawn directly (the gguf package cannot quantize them),
    the 32-blocks quantized from normal values by the gguf package."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, quants

    block, size = GGML_QUANT_SIZES[qtype]
    n_blocks = rows * cols // block
    if qtype == GGMLQuantizationType.Q4_K:
        raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
        raw[:, 0:2] = np.full((n_blocks, 1), 0.0008, dtype=np.float16).view(np.uint8)  # d
        raw[:, 2:4] = np.full((n_blocks, 1), 0.0004, dtype=np.float16).view(np.uint8)  # dmin
        return raw.reshape(rows, -1)
    if qtype == GGMLQuantizationType.Q6_K:
        raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
        raw[:, 192:208] = rng.integers(-24, 25, size=(n_blocks, 16), dtype=np.int8).view(np.uint8)  # scales
        raw[:, 208:210] = np.full((n_blocks, 1), 0.0006, dtype=np.float16).view(np.uint8)  # d
        return raw.reshape(rows, -1)
    values = rng.normal(0.0, 0.08, size=(rows, cols)).astype(np.float32)
    return quants.quantize(values, qtype)


def write_tiny_gguf(path: Path, *, seed: int = 0) -> Path:
    from gguf import GGMLQuantizationType as Q
    from gguf import GGUFWriter

    rng = np.random.default_rng(seed)
    t = TINY
    tokens, scores, types = tiny_vocabulary()
    vocab, hidden, hd = len(tokens), t["hidden"], t["head_dim"]
    writer = GGUFWriter(str(path), "gemma3")
    writer.add_block_count(t["layers"])
    writer.add_context_length(4096)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(t["ffn"])
    writer.add_head_count(t["heads"])
    writer.add_head_count_kv(t["kv_heads"])
    writer.add_key_length(hd)
    writer.add_value_length(hd)
    writer.add_layer_norm_rms_eps(t["eps"])
    writer.add_rope_freq_base(t["rope_base"])
    writer.add_sliding_window(t["window"])
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(2)
    writer.add_eos_token_id(1)
    writer.add_unk_token_id(3)
    writer.add_pad_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_space_prefix(False)

    def norm(n: int) -> np.ndarray:
        # GGUF stores Gemma's norm weights with the "1 +" added; k / 1024 keeps (w - 1) + 1 exact in float32
        return (1.0 + rng.integers(-200, 200, size=n) / 1024.0).astype(np.float32)

    def matrix(name: str, qtype: Any, rows: int, cols: int) -> None:
        writer.add_tensor(name, _random_blocks(qtype, rows, cols, rng), raw_dtype=qtype)

    matrix("token_embd.weight", Q.Q8_0, vocab, hidden)
    writer.add_tensor("output_norm.weight", norm(hidden))
    qd, kvd = t["heads"] * hd, t["kv_heads"] * hd
    for i in range(t["layers"]):
        p = f"blk.{i}."
        for name, n in (("attn_norm", hidden), ("attn_q_norm", hd), ("attn_k_norm", hd)):
            writer.add_tensor(p + name + ".weight", norm(n))
        for name in ("post_attention_norm", "ffn_norm", "post_ffw_norm"):
            writer.add_tensor(p + name + ".weight", norm(hidden))
        matrix(p + "attn_q.weight", Q.Q5_0, qd, hidden)
        matrix(p + "attn_k.weight", Q.Q5_0, kvd, hidden)
        matrix(p + "attn_v.weight", Q.Q8_0, kvd, hidden)
        matrix(p + "attn_output.weight", Q.Q4_K, hidden, qd)
        matrix(p + "ffn_gate.weight", Q.Q5_0, t["ffn"], hidden)
        matrix(p + "ffn_up.weight", Q.Q5_0, t["ffn"], hidden)
        matrix(p + "ffn_down.weight", Q.Q6_K if i % 2 else Q.Q4_K, hidden, t["ffn"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


_HF_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "attn_norm": "input_layernorm",
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


def reference_model(path: Path) -> Any:
    """transformers' Gemma3ForCausalLM with the GGUF's weights, dequantized by the gguf package (fp32)."""
    import torch
    from gguf import GGUFReader, quants
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from inference.gguf_model import GemmaConfig, read_gguf

    config = GemmaConfig.from_metadata(read_gguf(path).metadata)
    reader = GGUFReader(str(path))
    weights = {t.name: quants.dequantize(t.data, t.tensor_type) for t in reader.tensors}
    vocab = weights["token_embd.weight"].shape[0]
    hf_config = Gemma3TextConfig(
        vocab_size=vocab,
        hidden_size=config.hidden,
        intermediate_size=config.ffn,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        num_key_value_heads=config.kv_heads,
        head_dim=config.head_dim,
        query_pre_attn_scalar=config.head_dim,
        sliding_window=config.sliding_window,
        rms_norm_eps=config.eps,
        max_position_embeddings=4096,
        eos_token_id=None,
        bos_token_id=None,
        pad_token_id=0,
    )
    model = Gemma3ForCausalLM(hf_config)
    state = {
        "model.embed_tokens.weight": weights["token_embd.weight"],
        "model.norm.weight": weights["output_norm.weight"] - 1,
    }
    for name, value in weights.items():
        if not name.startswith("blk."):
            continue
        _, layer, kind, _ = name.split(".")
        target = f"model.layers.{layer}.{_HF_NAMES[kind]}.weight"
        state[target] = value - 1 if kind.endswith("norm") else value
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in state.items()}
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    model.generation_config.eos_token_id = None
    return model.eval()


class ReferenceStep:
    """GGUFModel's interface over a transformers causal LM (tests: the reference, scripted stand-ins)."""

    weights_label = "fp32"
    head_label = "fp32"
    isa = ""

    def __init__(self, model: Any) -> None:
        self.hf = model.eval()
        self.n_params = sum(p.numel() for p in model.parameters())
        self.size_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        self.vocab = int(model.config.vocab_size)
        self.architecture = str(model.config.model_type)
        self.cache: Any = None

    def forward(self, tokens: list[int], pos0: int, *, logits: int = 1) -> Any:
        import torch
        from transformers import DynamicCache

        if pos0 == 0 or self.cache is None:
            self.cache = DynamicCache(config=self.hf.config)
        ids = torch.tensor([list(tokens)], dtype=torch.long)
        with torch.inference_mode():
            out = self.hf(input_ids=ids, cache=self.cache, use_cache=True)
        return out.logits[0] if logits == 2 else out.logits[0, -1]


def make_byte_tokenizer(*, with_eos: bool = False) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    specials = ["<pad>", "<bos>", "<eos>"]
    for name in specials:
        vocab[name] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    kwargs: dict[str, Any] = {"pad_token": "<pad>", "bos_token": "<bos>"}
    if with_eos:
        kwargs["eos_token"] = "<eos>"
    return PreTrainedTokenizerFast(tokenizer_object=backend, **kwargs)


def make_tiny_causal_lm(vocab_size: int, *, seed: int = 0) -> Any:
    """A 2-layer Gemma 3 text model with random weights (the same architecture as the default demo model)."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(seed)
    config = Gemma3TextConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        max_position_embeddings=4096,
        sliding_window=64,
        eos_token_id=None,
        bos_token_id=None,
        pad_token_id=0,
    )
    model = Gemma3ForCausalLM(config)
    model.generation_config.eos_token_id = None
    return model.eval()
