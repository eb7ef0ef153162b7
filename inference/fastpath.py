"""A lean Gemma 3 decode step over a static KV cache, for the int8 engine.

Same arithmetic as transformers' Gemma3ForCausalLM (RMSNorm with 1 + weight, q/k norms, per-layer-type RoPE,
sliding-window layers, scaled embedding, tied head) without its per-call machinery (mask builders, output
capturing, cache objects). The KV cache is preallocated; a decode step takes the position as a tensor, so with
`compile=True` one compiled graph serves every position.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from inference.kernels import int8_linear

# Logits within this many nats of the best 4-bit score are recomputed from the int8 rows. The largest error of a
# 4-bit score, over all 262,144 rows at 197 steps of 4 fixed texts, was 5.3 (median of each step's largest 2.8:
# `bench/head_screen.py`), so a row that could be the best is always recomputed; a row left at its 4-bit score
# scored more than 8 below the best (e^-8 = 0.03 % of its probability, at that score).
SCREEN_MARGIN = 8.0
# At most this many rows are recomputed per step (the best-scored ones): a nearly flat distribution would otherwise
# send thousands of scattered rows to the int8 table. A median step recomputes about 64 (bench/head_screen.py).
SCREEN_CAP = 4096
# A prompt up to this many tokens goes through the native step one token at a time (the output head only for the
# last): about 6.4 ms a token, against the eager prefill's 180-380 ms for 2-96 tokens (it widens every int8 matrix
# to fp32 first). `bench/prefill.py` measured the crossing near 60 tokens: 6 tokens 41 vs 296 ms, 48 tokens 306 vs
# 374 ms.
NATIVE_PREFILL_MAX_TOKENS = 48


def supports(model: Any) -> bool:
    config = getattr(model, "config", None)
    return getattr(config, "model_type", "") == "gemma3_text" and not getattr(config, "attn_logit_softcapping", None)


def _rms(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    x = x.float()
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * (1.0 + weight.float())


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class GemmaFastDecoder:
    def __init__(
        self,
        model: Any,
        *,
        max_len: int,
        compile: bool = False,
        native: Any = None,
        head_screen: bool = True,
        max_threads: int = 1,
    ) -> None:
        config = model.config
        self.model = model
        self.config = config
        self.max_len = max_len
        self.layers = list(model.model.layers)
        self.eps = config.rms_norm_eps
        self.head_dim = config.head_dim
        self.n_heads = config.num_attention_heads
        self.n_kv = config.num_key_value_heads
        self.scaling = config.query_pre_attn_scalar**-0.5
        self.window = config.sliding_window
        self.layer_types = list(config.layer_types)
        self.inv_freq = {}
        for layer_type in set(self.layer_types):
            base = config.rope_parameters[layer_type]["rope_theta"]
            dim = self.head_dim
            self.inv_freq[layer_type] = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))
        self.fused = [self._fuse(layer) for layer in self.layers]
        shape = (1, self.n_kv, max_len, self.head_dim)
        # With the native step nothing reads a slot before it is written (the eager prefill slices the cache to the
        # positions it has filled), so the cache can stay unzeroed: its pages become resident as generations use them.
        alloc = torch.empty if native is not None else torch.zeros
        self.k = [alloc(shape) for _ in self.layers]
        self.v = [alloc(shape) for _ in self.layers]
        self.slots = torch.arange(max_len)
        self.position = 0
        # `native`: the module from inference.native; its GemmaStep runs the whole decode step in one C++ call.
        self.head_screened = False  # the native step scores the output head from its 4-bit copy
        self.max_threads = max(1, max_threads)  # the native step's pool: the caller and max_threads - 1 helpers
        self._native = self._native_step(native, head_screen) if native is not None else None
        self.backend = "native" if self._native is not None else ("compiled" if compile else "eager")
        if self.backend == "compiled" and native is not None:  # the compiled graph reads every slot (masked)
            for cache in (*self.k, *self.v):
                cache.zero_()
        if self._native is None and compile:
            self._step = torch.compile(self._forward, dynamic=False)
        else:
            self._step = self._forward

    def _native_step(self, native: Any, head_screen: bool) -> Any:
        inner = self.model.model
        embed, head = inner.embed_tokens, self.model.lm_head
        tied = getattr(head, "weight", None) is not None and head.weight.data_ptr() == embed.weight.data_ptr()
        if not tied or any(f is None for f in self.fused) or self.n_heads % self.n_kv:
            return None
        if getattr(self.config, "final_logit_softcapping", None):
            return None

        def vec(t: torch.Tensor) -> torch.Tensor:
            return t.detach().float().contiguous()

        layers = []
        for i, layer in enumerate(self.layers):
            attn, mlp = layer.self_attn, layer.mlp
            (qkv_w, qkv_s, _), (gu_w, gu_s, _) = self.fused[i]
            layers.append(
                [
                    vec(layer.input_layernorm.weight),
                    qkv_w,
                    qkv_s,
                    vec(attn.q_norm.weight),
                    vec(attn.k_norm.weight),
                    attn.o_proj.weight,
                    attn.o_proj.scale,
                    vec(layer.post_attention_layernorm.weight),
                    vec(layer.pre_feedforward_layernorm.weight),
                    gu_w,
                    gu_s,
                    mlp.down_proj.weight,
                    mlp.down_proj.scale,
                    vec(layer.post_feedforward_layernorm.weight),
                    self.k[i],
                    self.v[i],
                    self.inv_freq[self.layer_types[i]].contiguous(),
                ]
            )
        windows = [self.window if t == "sliding_attention" else 0 for t in self.layer_types]
        screen = getattr(self.model, "rigfit_head_screen", None) if head_screen else None
        self.head_screened = screen is not None
        return native.GemmaStep(
            [embed.weight, embed.scale, vec(inner.norm.weight), *(screen or ())],
            layers,
            windows,
            self.n_heads,
            self.n_kv,
            self.head_dim,
            self.config.intermediate_size,
            self.max_len,
            float(self.eps),
            float(self.scaling),
            float(embed.embed_scale),
            SCREEN_MARGIN,
            SCREEN_CAP,
            self.max_threads,
        )

    @staticmethod
    def _fuse(layer: Any) -> tuple[Any, Any] | None:
        """One int8 matrix for q/k/v and one for gate/up (fewer kernels per step); the layer's own modules are
        re-pointed at row slices of them, so no weight is held twice."""
        from inference.kernels import Int8Linear

        prefused = getattr(layer, "rigfit_fused", None)  # inference.lite stores them fused already
        if prefused is not None:
            return prefused
        attn, mlp = layer.self_attn, layer.mlp
        groups = ((attn.q_proj, attn.k_proj, attn.v_proj), (mlp.gate_proj, mlp.up_proj))
        if not all(isinstance(m, Int8Linear) and m.bias is None for group in groups for m in group):
            return None
        fused = []
        for group in groups:
            weight = torch.cat([m.weight for m in group])
            scale = torch.cat([m.scale for m in group])
            start = 0
            for module in group:
                rows = module.weight.shape[0]
                module.weight, module.scale = weight[start : start + rows], scale[start : start + rows]
                start += rows
            fused.append((weight, scale, [m.weight.shape[0] for m in group]))
        return fused[0], fused[1]

    def _forward(self, ids: torch.Tensor, positions: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """ids, positions: [T]; last: the last position (scalar tensor). Returns logits for the last token."""
        model = self.model
        T = ids.shape[0]
        h = model.model.embed_tokens(ids[None])  # [1, T, hidden], already scaled by sqrt(hidden)
        rope = {}
        for layer_type, inv_freq in self.inv_freq.items():
            freqs = positions[:, None].float() * inv_freq[None, :]
            emb = torch.cat((freqs, freqs), dim=-1)
            rope[layer_type] = (emb.cos()[None, None], emb.sin()[None, None])
        # allowed[q, s]: slot s holds a position at or before q's (causal) and, for sliding layers, within the window
        # Eager (the native step's prefill): attend over the filled slots only; compiled: over the whole cache, masked.
        end = None if self.backend == "compiled" else int(positions[-1]) + 1
        slots = self.slots[:end]
        causal = slots[None, :] <= positions[:, None]
        window = causal & (slots[None, :] > positions[:, None] - self.window)
        masks = {"full_attention": causal[None, None], "sliding_attention": window[None, None]}
        for i, layer in enumerate(self.layers):
            attn = layer.self_attn
            layer_type = self.layer_types[i]
            x = _rms(h, layer.input_layernorm.weight, self.eps)
            fused = self.fused[i]
            if fused is None:
                q, k, v = attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)
            else:
                weight, scale, sizes = fused[0]
                q, k, v = int8_linear(x, weight, scale, None).split(sizes, dim=-1)
            q = q.reshape(1, T, self.n_heads, self.head_dim).transpose(1, 2)
            k = k.reshape(1, T, self.n_kv, self.head_dim).transpose(1, 2)
            v = v.reshape(1, T, self.n_kv, self.head_dim).transpose(1, 2)
            q = _rms(q, attn.q_norm.weight, self.eps)
            k = _rms(k, attn.k_norm.weight, self.eps)
            cos, sin = rope[layer_type]
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            self.k[i].index_copy_(2, positions, k)
            self.v[i].index_copy_(2, positions, v)
            out = F.scaled_dot_product_attention(
                q,
                self.k[i][:, :, :end],
                self.v[i][:, :, :end],
                attn_mask=masks[layer_type],
                scale=self.scaling,
                enable_gqa=True,
            )
            out = attn.o_proj(out.transpose(1, 2).reshape(1, T, self.n_heads * self.head_dim))
            h = h + _rms(out, layer.post_attention_layernorm.weight, self.eps)
            x = _rms(h, layer.pre_feedforward_layernorm.weight, self.eps)
            mlp = layer.mlp
            if fused is None:
                gate, up = mlp.gate_proj(x), mlp.up_proj(x)
            else:
                weight, scale, sizes = fused[1]
                gate, up = int8_linear(x, weight, scale, None).split(sizes, dim=-1)
            x = mlp.down_proj(F.gelu(gate, approximate="tanh") * up)
            h = h + _rms(x, layer.post_feedforward_layernorm.weight, self.eps)
        h = _rms(h[:, -1:], model.model.norm.weight, self.eps)
        if self._native is not None:  # the same head as the decode step (screened where a 4-bit copy is given)
            return self._native.head(h.reshape(-1))
        return model.lm_head(h)[0, -1]

    def prefill(self, input_ids: torch.Tensor) -> torch.Tensor:
        ids = input_ids.reshape(-1)
        self.position = int(ids.shape[0])
        if self._native is not None and self.position <= NATIVE_PREFILL_MAX_TOKENS:
            last = self.position - 1
            for position, token in enumerate(ids.tolist()):
                logits = self._native.forward(token, position, position == last)
            return logits
        positions = torch.arange(ids.shape[0])
        if self._native is None:
            return self._forward(ids, positions, positions[-1])
        torch.set_num_threads(self.threads)  # the eager prefill of a long prompt: torch's pool, at the chosen count
        try:
            return self._forward(ids, positions, positions[-1])
        finally:
            torch.set_num_threads(1)

    def use_temperature(self, temperature: float) -> None:
        """Widen the head's screening margin for sampling hotter than 1: the logits are divided by the temperature,
        so a row `SCREEN_MARGIN` below the best in logits is only SCREEN_MARGIN / T below it where tokens are drawn."""
        if self._native is not None and self.head_screened:
            self._native.set_screen_margin(SCREEN_MARGIN * max(1.0, temperature))

    def set_threads(self, threads: int) -> None:
        """Threads for the next steps. On the native step: its own pool (at most `max_threads`), and torch's only
        for the eager prefill of a long prompt; sampling runs on one torch thread, since OpenMP's idle workers
        would otherwise spin beside the step's own threads at the start of every step."""
        threads = max(1, threads)
        if self._native is not None:
            self._native.set_threads(min(threads, self.max_threads))
            torch.set_num_threads(1)
        else:
            torch.set_num_threads(threads)

    def cpu_seconds(self) -> float:
        """CPU time of the calling thread plus the native step's helper threads (the governor's own share)."""
        import time

        helpers = float(self._native.helpers_cpu_seconds()) if self._native is not None else 0.0
        return time.thread_time() + helpers

    @property
    def threads(self) -> int:
        return int(self._native.threads()) if self._native is not None else torch.get_num_threads()

    @property
    def rescored_rows(self) -> int | None:
        """Output-head rows computed from the int8 weights at the last native step (None off the native step)."""
        return None if self._native is None else int(self._native.last_rescored())

    def decode(self, token: int) -> torch.Tensor:
        if self._native is not None:
            self.position += 1
            return self._native.forward(int(token), self.position - 1)
        position = torch.tensor([self.position])
        self.position += 1
        return self._step(torch.tensor([token]), position, position[0])
