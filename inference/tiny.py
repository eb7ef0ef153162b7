"""Tiny randomly initialised models built in-process: they exercise the real engine code where no weights can be
downloaded (tests, CI). A byte-level tokenizer (256 byte tokens, no merges) handles any text."""

from __future__ import annotations

from typing import Any


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
