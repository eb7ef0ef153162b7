// The Gemma 3 single-token decode step as one C++ call (AVX-512 VNNI), for the int8 engine.
//
// Decode on a CPU is bound by the bytes read per token. Each int8 weight row is read once: the activation vector is
// quantized to int16 with one scale (15 bits: far below the int8 weights' own error), the int8 row is widened to
// int16 and multiplied-accumulated with vpdpwssd (32 products per instruction, int32 lanes). Everything else of the
// step (norms, RoPE, attention over the static KV cache, GELU) runs here too, so one Python call makes one token.
// Same arithmetic as inference/fastpath.py (and transformers' Gemma3ForCausalLM).
//
// The tied 262k-row output head is two thirds of the bytes. Where a 4-bit copy of it is given (kernels.py's
// quantize_q4_screen), each step first scores every row from that copy (about 0.56 of the int8 bytes), then recomputes
// with the int8 rows, exactly as without the copy, every row that scored within `screen_margin` of the best. Only
// tokens far below the best keep their 4-bit logit (the idea of SVD-softmax, Shim et al., NeurIPS 2017: preview every
// row cheaply, compute the top candidates exactly).
//
// Threads: the step runs its matrix-vector products on its own small pool (`Pool`), not torch's OpenMP one. The
// calling thread works too and hands rows out in chunks from one atomic counter, so a helper thread that another
// process has pushed off its core costs nothing unless it holds a chunk at that moment: the caller takes every chunk
// nobody has claimed. Idle helpers spin briefly, then yield, then sleep on a futex. `set_threads` changes how many
// take part (inference/threads.py chooses it per generation); attention over a short context runs on the caller alone.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <immintrin.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <cstring>
#include <ctime>
#include <memory>
#include <thread>
#include <vector>

namespace {

inline void futex_wait(std::atomic<uint32_t>* word, uint32_t expected) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}

inline void futex_wake_all(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}

// The caller plus up to `max_threads - 1` helpers. A job is [0, n) in chunks of `grain`, claimed from `claim_`
// (job number in the high 32 bits, next index in the low 32): a claim succeeds only for the job it was read for, so
// a helper that wakes late never touches a later job with the earlier job's arguments.
class Pool {
 public:
  using Fn = void (*)(const void*, int64_t, int64_t);
  static constexpr int kSpins = 4000;  // pause instructions before yielding (tens of microseconds)
  static constexpr int kYields = 64;   // sched_yield calls before sleeping on the futex

  explicit Pool(int max_threads) : max_threads_(std::max(1, max_threads)), active_(max_threads_ - 1) {
    for (int i = 0; i + 1 < max_threads_; ++i) helpers_.emplace_back([this, i] { helper(i); });
  }

  ~Pool() {
    stop_.store(true);
    seq_.fetch_add(1);
    futex_wake_all(&seq_);
    park_.fetch_add(1);
    futex_wake_all(&park_);
    for (auto& t : helpers_) t.join();
  }

  int max_threads() const { return max_threads_; }
  int threads() const { return active_.load() + 1; }

  // CPU time the helpers have run (spinning included), so that a caller can tell its own use of the cores from
  // other processes' and threads'.
  double helpers_cpu_seconds() {
    double total = 0.0;
    for (auto& t : helpers_) {
      clockid_t clock;
      timespec ts;
      if (pthread_getcpuclockid(t.native_handle(), &clock) == 0 && clock_gettime(clock, &ts) == 0)
        total += static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
    }
    return total;
  }

  void set_threads(int n) {
    active_.store(std::clamp(n, 1, max_threads_) - 1);
    park_.fetch_add(1);
    futex_wake_all(&park_);
  }

  template <class F>
  void run(int64_t n, int64_t grain, const F& f) {
    grain = std::max<int64_t>(1, grain);
    if (n <= 0) return;
    if (active_.load(std::memory_order_relaxed) == 0 || n <= grain) {
      f(0, n);
      return;
    }
    const uint32_t job = seq_.load(std::memory_order_relaxed) + 1;
    fn_.store([](const void* c, int64_t b, int64_t e) { (*static_cast<const F*>(c))(b, e); },
              std::memory_order_relaxed);
    ctx_.store(&f, std::memory_order_relaxed);
    n_.store(n, std::memory_order_relaxed);
    grain_.store(grain, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    claim_.store(static_cast<uint64_t>(job) << 32, std::memory_order_release);
    seq_.store(job);
    if (sleepers_.load() > 0) futex_wake_all(&seq_);
    work(job);
    int spins = 0;
    while (done_.load(std::memory_order_acquire) < n) {  // only chunks a helper holds right now
      if (++spins < kSpins) {
        _mm_pause();
      } else {
        sched_yield();
      }
    }
  }

 private:
  // Claim and run chunks of `job` until none is left (or the job is over).
  void work(uint32_t job) {
    uint64_t word = claim_.load(std::memory_order_acquire);
    if ((word >> 32) != job) return;
    const Fn fn = fn_.load(std::memory_order_relaxed);
    const void* ctx = ctx_.load(std::memory_order_relaxed);
    const int64_t n = n_.load(std::memory_order_relaxed), grain = grain_.load(std::memory_order_relaxed);
    while ((word >> 32) == job) {
      const int64_t begin = static_cast<int64_t>(word & 0xFFFFFFFFu);
      if (begin >= n) return;
      const int64_t end = std::min(n, begin + grain);
      const uint64_t next = (static_cast<uint64_t>(job) << 32) | static_cast<uint64_t>(end);
      if (claim_.compare_exchange_weak(word, next, std::memory_order_acq_rel, std::memory_order_acquire)) {
        fn(ctx, begin, end);  // the claim succeeded: the job is still open, so fn/ctx/n/grain were its own
        done_.fetch_add(end - begin, std::memory_order_release);
        word = next;
      }
    }
  }

  void helper(int index) {
    uint32_t seen = seq_.load();
    while (!stop_.load()) {
      const uint32_t parked = park_.load();
      if (index >= active_.load()) {  // not taking part at this thread count: sleep until it changes
        futex_wait(&park_, parked);
        seen = seq_.load();
        continue;
      }
      uint32_t now;
      int spins = 0;
      while ((now = seq_.load()) == seen && !stop_.load() && park_.load() == parked) {
        if (++spins < kSpins) {
          _mm_pause();
        } else if (spins < kSpins + kYields) {
          sched_yield();
        } else {
          sleepers_.fetch_add(1);
          if (seq_.load() == seen && park_.load() == parked) futex_wait(&seq_, seen);
          sleepers_.fetch_sub(1);
          spins = 0;
        }
      }
      if (now == seen) continue;  // stopped, or the thread count changed
      seen = now;
      work(now);
    }
  }

  const int max_threads_;
  std::atomic<int> active_;  // helpers taking part: threads - 1
  std::atomic<bool> stop_{false};
  std::atomic<uint32_t> seq_{0};   // the latest job's number; helpers sleep on it
  std::atomic<uint32_t> park_{0};  // bumped when the thread count changes; parked helpers sleep on it
  std::atomic<int> sleepers_{0};
  std::atomic<uint64_t> claim_{0};
  std::atomic<int64_t> done_{0}, n_{0}, grain_{1};
  std::atomic<Fn> fn_{nullptr};
  std::atomic<const void*> ctx_{nullptr};
  std::vector<std::thread> helpers_;
};

// On the pool when there is one, else torch's (the standalone kernels below).
template <class F>
void parallel_rows(Pool* pool, int64_t n, int64_t grain, const F& f) {
  if (pool != nullptr) {
    pool->run(n, grain, f);
  } else {
    at::parallel_for(0, n, grain, f);
  }
}

float quantize16(const float* x, int16_t* q, int64_t K) {
  float m = 0.f;
  for (int64_t k = 0; k < K; ++k) m = std::max(m, std::fabs(x[k]));
  if (m == 0.f) {
    std::memset(q, 0, K * sizeof(int16_t));
    return 0.f;
  }
  const float inv = 32767.f / m;
  for (int64_t k = 0; k < K; ++k) q[k] = static_cast<int16_t>(std::nearbyint(x[k] * inv));
  return m / 32767.f;
}

inline int32_t row_dot(const int8_t* r, const int16_t* xq, int64_t K) {
  __m512i acc = _mm512_setzero_si512();
  int64_t k = 0;
  for (; k + 32 <= K; k += 32) {
    __m512i w = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(r + k)));
    acc = _mm512_dpwssd_epi32(acc, w, _mm512_loadu_si512(xq + k));
  }
  int32_t s = _mm512_reduce_add_epi32(acc);
  for (; k < K; ++k) s += static_cast<int32_t>(r[k]) * xq[k];
  return s;
}

// y[n] = scale[n] * xs * sum_k w[n, k] * xq[k]
void gemv_q(Pool* pool, const int16_t* xq, float xs, const int8_t* w, const float* scale, float* y, int64_t N,
            int64_t K) {
  const int64_t grain = std::max<int64_t>(64, (N / 256) & ~int64_t{3});  // few chunks per job, 4-row aligned
  parallel_rows(pool, N, grain, [&](int64_t begin, int64_t end) {
    int64_t n = begin;
    if (K % 32 == 0) {
      for (; n + 4 <= end; n += 4) {
        const int8_t* r0 = w + n * K;
        const int8_t* r1 = r0 + K;
        const int8_t* r2 = r1 + K;
        const int8_t* r3 = r2 + K;
        __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
        __m512i a2 = _mm512_setzero_si512(), a3 = _mm512_setzero_si512();
        for (int64_t k = 0; k < K; k += 32) {
          const __m512i xv = _mm512_loadu_si512(xq + k);
          a0 = _mm512_dpwssd_epi32(a0, _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i*)(r0 + k))), xv);
          a1 = _mm512_dpwssd_epi32(a1, _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i*)(r1 + k))), xv);
          a2 = _mm512_dpwssd_epi32(a2, _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i*)(r2 + k))), xv);
          a3 = _mm512_dpwssd_epi32(a3, _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i*)(r3 + k))), xv);
        }
        y[n] = static_cast<float>(_mm512_reduce_add_epi32(a0)) * xs * scale[n];
        y[n + 1] = static_cast<float>(_mm512_reduce_add_epi32(a1)) * xs * scale[n + 1];
        y[n + 2] = static_cast<float>(_mm512_reduce_add_epi32(a2)) * xs * scale[n + 2];
        y[n + 3] = static_cast<float>(_mm512_reduce_add_epi32(a3)) * xs * scale[n + 3];
      }
    }
    for (; n < end; ++n) y[n] = static_cast<float>(row_dot(w + n * K, xq, K)) * xs * scale[n];
  });
}

// The activation for the 4-bit screening product: int8 per block of 32, with each block's scale and the offset that
// the weights' unsigned codes (q - 8) leave: off[b] = 8 * d[b] * sum(q[b]).
struct Blocks8 {
  std::vector<int8_t> q;
  std::vector<float> d, off;

  void resize(int64_t K) {
    q.resize(K);
    d.resize(K / 32);
    off.resize(K / 32);
  }
};

void quantize_blocks8(const float* x, int64_t K, Blocks8& a) {
  for (int64_t b = 0; b < K / 32; ++b) {
    const float* xb = x + b * 32;
    float m = 0.f;
    for (int i = 0; i < 32; ++i) m = std::max(m, std::fabs(xb[i]));
    const float d = m / 127.f;
    const float inv = d > 0.f ? 1.f / d : 0.f;
    int32_t sum = 0;
    for (int i = 0; i < 32; ++i) {
      const int v = static_cast<int>(std::nearbyint(xb[i] * inv));
      a.q[b * 32 + i] = static_cast<int8_t>(v);
      sum += v;
    }
    a.d[b] = d;
    a.off[b] = 8.f * d * static_cast<float>(sum);
  }
}

inline __m512 pair_scale(float lo, float hi) {
  return _mm512_castpd_ps(
      _mm512_insertf64x4(_mm512_castps_pd(_mm512_set1_ps(lo)), _mm256_castps_pd(_mm256_set1_ps(hi)), 1));
}

constexpr int64_t kMaxScreenBlocks = 512;  // K up to 16384
constexpr int64_t kParallelAttention = 128;  // positions attended from which the heads are split over the pool

// y[n] = sum_b scale[n, b] * (d[b] * sum_i q[n, b, i] * a.q[b, i] - a.off[b]), the 4-bit codes q in 0..15 stored
// two blocks per 32 bytes (block 2p in the low nibbles, 2p + 1 in the high ones), one fp16 scale per block.
void gemv_q4(Pool* pool, const Blocks8& a, const uint8_t* nib, const uint16_t* scales, float* y, int64_t N,
             int64_t K) {
  const int64_t B = K / 32, P = K / 64;
  parallel_rows(pool, N, 1024, [&](int64_t begin, int64_t end) {
    alignas(64) float ds[kMaxScreenBlocks];
    const __m256i low = _mm256_set1_epi8(0x0F);
    for (int64_t n = begin; n < end; ++n) {
      const uint16_t* s = scales + n * B;
      __m512 acc = _mm512_setzero_ps();
      for (int64_t b = 0; b < B; b += 16) {
        const __mmask16 mask = B - b >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (B - b)) - 1);
        const __m512 dv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, s + b));
        _mm512_mask_storeu_ps(ds + b, mask, _mm512_mul_ps(dv, _mm512_maskz_loadu_ps(mask, a.d.data() + b)));
        acc = _mm512_fnmadd_ps(dv, _mm512_maskz_loadu_ps(mask, a.off.data() + b), acc);
      }
      const uint8_t* row = nib + n * (K / 2);
      for (int64_t p = 0; p < P; ++p) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + p * 32));
        const __m256i lo = _mm256_and_si256(v, low);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
        const __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
        const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, _mm512_loadu_si512(a.q.data() + p * 64));
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), pair_scale(ds[2 * p], ds[2 * p + 1]), acc);
      }
      y[n] = _mm512_reduce_add_ps(acc);
    }
  });
}

// Recompute with the int8 rows every logit within `margin` of the best, at most `cap` of them (the best-scored: a
// nearly flat distribution, as after a lone start token, would otherwise send thousands of scattered rows to the int8
// table); returns how many were recomputed.
int64_t rescore(float* logits, int64_t N, float margin, int64_t cap, const int16_t* xq, float xs, const int8_t* w,
                const float* scale, int64_t K) {
  __m512 mv = _mm512_set1_ps(-INFINITY);
  int64_t n = 0;
  for (; n + 16 <= N; n += 16) mv = _mm512_max_ps(mv, _mm512_loadu_ps(logits + n));
  float best = _mm512_reduce_max_ps(mv);
  for (; n < N; ++n) best = std::max(best, logits[n]);
  float threshold = best - margin;
  std::vector<int64_t> rows;
  const __m512 tv = _mm512_set1_ps(threshold);
  for (n = 0; n + 16 <= N; n += 16) {
    uint32_t hits = _mm512_cmp_ps_mask(_mm512_loadu_ps(logits + n), tv, _CMP_GE_OQ);
    while (hits) {
      rows.push_back(n + __builtin_ctz(hits));
      hits &= hits - 1;
    }
  }
  for (; n < N; ++n)
    if (logits[n] >= threshold) rows.push_back(n);
  if (static_cast<int64_t>(rows.size()) > cap) {
    std::nth_element(rows.begin(), rows.begin() + (cap - 1), rows.end(),
                     [logits](int64_t a, int64_t b) { return logits[a] > logits[b]; });
    rows.resize(cap);
  }
  for (const int64_t r : rows) logits[r] = static_cast<float>(row_dot(w + r * K, xq, K)) * xs * scale[r];
  return static_cast<int64_t>(rows.size());
}

inline float dot(const float* a, const float* b, int64_t n) {
  __m512 acc = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc);
  float s = _mm512_reduce_add_ps(acc);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// out = x * rsqrt(mean(x^2) + eps) * (1 + w)
void rms(const float* x, const float* w, float* out, int64_t n, float eps) {
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float r = 1.f / std::sqrt(static_cast<float>(ss / n) + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * r * (1.f + w[i]);
}

void rope(float* x, const float* cos_, const float* sin_, int64_t hd) {
  const int64_t half = hd / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float a = x[i], b = x[i + half];
    x[i] = a * cos_[i] - b * sin_[i];
    x[i + half] = b * cos_[i] + a * sin_[i];
  }
}

inline float gelu_tanh(float x) {
  const float c = 0.7978845608028654f;  // sqrt(2 / pi)
  return 0.5f * x * (1.f + std::tanh(c * (x + 0.044715f * x * x * x)));
}

void check_screen(const torch::Tensor& codes, const torch::Tensor& scales, int64_t N, int64_t K) {
  TORCH_CHECK(K % 64 == 0 && K / 32 <= kMaxScreenBlocks, "4-bit screening needs K a multiple of 64, at most 16384");
  TORCH_CHECK(codes.scalar_type() == torch::kByte && codes.dim() == 2 && codes.size(0) == N && codes.size(1) == K / 2,
              "4-bit codes: uint8 [N, K / 2]");
  TORCH_CHECK(scales.scalar_type() == torch::kHalf && scales.dim() == 2 && scales.size(0) == N &&
                  scales.size(1) == K / 32,
              "4-bit scales: float16 [N, K / 32]");
}

struct Layer {
  torch::Tensor in_ln, qkv_w, qkv_s, q_norm, k_norm, o_w, o_s, post_attn_ln, pre_ff_ln, gu_w, gu_s, down_w, down_s,
      post_ff_ln, k_cache, v_cache, inv_freq;
  int64_t window;
};

class GemmaStep {
 public:
  // globals: embedding int8 [V, H], its row scales [V], final norm [H], optionally the head's 4-bit screening copy
  // (codes uint8 [V, H / 2], fp16 scales [V, H / 32]). Each layer: 17 tensors in Layer's order.
  GemmaStep(std::vector<torch::Tensor> globals, std::vector<std::vector<torch::Tensor>> layers,
            std::vector<int64_t> windows, int64_t n_heads, int64_t n_kv, int64_t head_dim, int64_t inter,
            int64_t max_len, double eps, double scaling, double embed_scale, double screen_margin, int64_t screen_cap,
            int64_t max_threads)
      : n_heads_(n_heads), n_kv_(n_kv), hd_(head_dim), inter_(inter), max_len_(max_len), eps_(eps),
        scaling_(scaling), embed_scale_(embed_scale), screen_margin_(screen_margin), screen_cap_(screen_cap),
        pool_(std::make_unique<Pool>(static_cast<int>(std::clamp<int64_t>(max_threads, 1, 256)))) {
    TORCH_CHECK(screen_cap > 0, "screen_cap: at least one row");
    TORCH_CHECK(globals.size() == 3 || globals.size() == 5, "globals: embedding, scales, final norm[, 4-bit head]");
    TORCH_CHECK(layers.size() == windows.size(), "one window per layer");
    emb_w_ = globals[0].contiguous();
    emb_s_ = globals[1].contiguous();
    final_norm_ = globals[2].contiguous().to(torch::kFloat);
    TORCH_CHECK(emb_w_.scalar_type() == torch::kChar, "int8 embedding");
    vocab_ = emb_w_.size(0);
    hidden_ = emb_w_.size(1);
    if (globals.size() == 5) {
      check_screen(globals[3], globals[4], vocab_, hidden_);
      screen_q_ = globals[3].contiguous();
      screen_s_ = globals[4].contiguous();
      screen_x_.resize(hidden_);
    }
    for (size_t i = 0; i < layers.size(); ++i) {
      auto& t = layers[i];
      TORCH_CHECK(t.size() == 17, "17 tensors per layer");
      for (size_t j = 0; j < t.size(); ++j) TORCH_CHECK(t[j].is_contiguous(), "contiguous tensors");
      layers_.push_back(Layer{t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9], t[10], t[11], t[12], t[13],
                              t[14], t[15], t[16], windows[i]});
    }
    const int64_t qkv = (n_heads + 2 * n_kv) * head_dim;
    const int64_t widest = std::max({hidden_, n_heads * head_dim, inter});
    h_.resize(hidden_);
    x_.resize(hidden_);
    tmp_.resize(hidden_);
    qkv_.resize(qkv);
    attn_.resize(n_heads * head_dim);
    gu_.resize(2 * inter);
    act_.resize(inter);
    xq_.resize(widest);
    cos_.resize(head_dim / 2);
    sin_.resize(head_dim / 2);
    scores_.resize(n_heads * max_len);
  }

  // One token at `pos`: fills the KV cache there and returns the next token's logits, or an empty tensor when
  // `logits` is false (a prompt token that is not the last: the output head is skipped).
  torch::Tensor forward(int64_t token, int64_t pos, bool logits = true) {
    TORCH_CHECK(token >= 0 && token < vocab_, "token id out of range");
    TORCH_CHECK(pos >= 0 && pos < max_len_, "position beyond the KV cache");
    const int64_t H = hidden_, hd = hd_;
    const float eps = static_cast<float>(eps_);
    const int8_t* ew = emb_w_.data_ptr<int8_t>() + token * H;
    const float es = emb_s_.data_ptr<float>()[token];
    for (int64_t k = 0; k < H; ++k) h_[k] = (static_cast<float>(ew[k]) * es) * static_cast<float>(embed_scale_);

    for (auto& L : layers_) {
      rms(h_.data(), L.in_ln.data_ptr<float>(), x_.data(), H, eps);
      float xs = quantize16(x_.data(), xq_.data(), H);
      Pool* pool = pool_.get();
      gemv_q(pool, xq_.data(), xs, L.qkv_w.data_ptr<int8_t>(), L.qkv_s.data_ptr<float>(), qkv_.data(), qkv_.size(),
             H);
      float* q = qkv_.data();
      float* k = q + n_heads_ * hd;
      float* v = k + n_kv_ * hd;
      const float* inv = L.inv_freq.data_ptr<float>();
      for (int64_t i = 0; i < hd / 2; ++i) {
        const float f = static_cast<float>(pos) * inv[i];
        cos_[i] = std::cos(f);
        sin_[i] = std::sin(f);
      }
      for (int64_t h = 0; h < n_heads_; ++h) {
        rms(q + h * hd, L.q_norm.data_ptr<float>(), q + h * hd, hd, eps);
        rope(q + h * hd, cos_.data(), sin_.data(), hd);
      }
      float* kc = L.k_cache.data_ptr<float>();
      float* vc = L.v_cache.data_ptr<float>();
      for (int64_t g = 0; g < n_kv_; ++g) {
        rms(k + g * hd, L.k_norm.data_ptr<float>(), k + g * hd, hd, eps);
        rope(k + g * hd, cos_.data(), sin_.data(), hd);
        std::memcpy(kc + (g * max_len_ + pos) * hd, k + g * hd, hd * sizeof(float));
        std::memcpy(vc + (g * max_len_ + pos) * hd, v + g * hd, hd * sizeof(float));
      }
      const int64_t start = L.window > 0 ? std::max<int64_t>(0, pos - L.window + 1) : 0;
      const int64_t group = n_heads_ / n_kv_;
      const float scaling = static_cast<float>(scaling_);
      // Over a short context the heads cost less than handing them out: the caller does them alone.
      auto heads = [&](int64_t hb, int64_t he) {
        for (int64_t h = hb; h < he; ++h) {
          const int64_t g = h / group;
          const float* qh = q + h * hd;
          const float* kg = kc + g * max_len_ * hd;
          const float* vg = vc + g * max_len_ * hd;
          float* sc = scores_.data() + h * max_len_;
          float m = -INFINITY;
          for (int64_t s = start; s <= pos; ++s) {
            sc[s] = dot(qh, kg + s * hd, hd) * scaling;
            m = std::max(m, sc[s]);
          }
          float sum = 0.f;
          for (int64_t s = start; s <= pos; ++s) {
            sc[s] = std::exp(sc[s] - m);
            sum += sc[s];
          }
          const float inv_sum = 1.f / sum;
          float* out = attn_.data() + h * hd;
          std::fill(out, out + hd, 0.f);
          for (int64_t s = start; s <= pos; ++s) {
            const __m512 p = _mm512_set1_ps(sc[s] * inv_sum);
            const float* vs = vg + s * hd;
            int64_t i = 0;
            for (; i + 16 <= hd; i += 16)
              _mm512_storeu_ps(out + i, _mm512_fmadd_ps(p, _mm512_loadu_ps(vs + i), _mm512_loadu_ps(out + i)));
            for (; i < hd; ++i) out[i] += sc[s] * inv_sum * vs[i];
          }
        }
      };
      if (pos - start + 1 >= kParallelAttention) {
        pool->run(n_heads_, 1, heads);
      } else {
        heads(0, n_heads_);
      }
      const int64_t A = n_heads_ * hd;
      xs = quantize16(attn_.data(), xq_.data(), A);
      gemv_q(pool, xq_.data(), xs, L.o_w.data_ptr<int8_t>(), L.o_s.data_ptr<float>(), tmp_.data(), H, A);
      rms(tmp_.data(), L.post_attn_ln.data_ptr<float>(), tmp_.data(), H, eps);
      for (int64_t i = 0; i < H; ++i) h_[i] += tmp_[i];
      rms(h_.data(), L.pre_ff_ln.data_ptr<float>(), x_.data(), H, eps);
      xs = quantize16(x_.data(), xq_.data(), H);
      gemv_q(pool, xq_.data(), xs, L.gu_w.data_ptr<int8_t>(), L.gu_s.data_ptr<float>(), gu_.data(), 2 * inter_, H);
      for (int64_t i = 0; i < inter_; ++i) act_[i] = gelu_tanh(gu_[i]) * gu_[inter_ + i];
      xs = quantize16(act_.data(), xq_.data(), inter_);
      gemv_q(pool, xq_.data(), xs, L.down_w.data_ptr<int8_t>(), L.down_s.data_ptr<float>(), tmp_.data(), H,
             inter_);
      rms(tmp_.data(), L.post_ff_ln.data_ptr<float>(), tmp_.data(), H, eps);
      for (int64_t i = 0; i < H; ++i) h_[i] += tmp_[i];
    }
    if (!logits) return torch::Tensor();
    rms(h_.data(), final_norm_.data_ptr<float>(), x_.data(), H, eps);
    return logits_of_x();
  }

  // The output head alone, on a final-normed hidden state [H] (the prefill's last token goes through it too, so the
  // int8 table is read only for the rows the screening recomputes).
  torch::Tensor head(torch::Tensor x) {
    TORCH_CHECK(x.dim() == 1 && x.size(0) == hidden_, "x: the final-normed hidden state [hidden]");
    auto xc = x.contiguous().to(torch::kFloat);
    std::memcpy(x_.data(), xc.data_ptr<float>(), hidden_ * sizeof(float));
    return logits_of_x();
  }

  void set_screen_margin(double margin) {
    TORCH_CHECK(margin >= 0.0, "screen margin: not negative");
    screen_margin_ = margin;
  }

  // Threads taking part in the next steps (1..max_threads; the caller counts as one).
  void set_threads(int64_t n) {
    TORCH_CHECK(n >= 1, "threads: at least 1");
    pool_->set_threads(static_cast<int>(n));
  }

  int64_t threads() const { return pool_->threads(); }

  int64_t max_threads() const { return pool_->max_threads(); }

  double helpers_cpu_seconds() { return pool_->helpers_cpu_seconds(); }

  // Rows computed with the int8 weights at the last step (every row without a screening copy).
  int64_t last_rescored() const { return last_rescored_; }

 private:
  torch::Tensor logits_of_x() {
    const int64_t H = hidden_;
    const float xs = quantize16(x_.data(), xq_.data(), H);
    auto logits = torch::empty({vocab_}, torch::kFloat);
    float* out = logits.data_ptr<float>();
    if (screen_q_.defined()) {
      quantize_blocks8(x_.data(), H, screen_x_);
      gemv_q4(pool_.get(), screen_x_, screen_q_.data_ptr<uint8_t>(),
              reinterpret_cast<const uint16_t*>(screen_s_.data_ptr()), out, vocab_, H);
      last_rescored_ = rescore(out, vocab_, static_cast<float>(screen_margin_), screen_cap_, xq_.data(), xs,
                               emb_w_.data_ptr<int8_t>(), emb_s_.data_ptr<float>(), H);
    } else {
      gemv_q(pool_.get(), xq_.data(), xs, emb_w_.data_ptr<int8_t>(), emb_s_.data_ptr<float>(), out, vocab_, H);
      last_rescored_ = vocab_;
    }
    return logits;
  }

  int64_t n_heads_, n_kv_, hd_, inter_, max_len_;
  double eps_, scaling_, embed_scale_, screen_margin_;
  int64_t screen_cap_, vocab_ = 0, hidden_ = 0, last_rescored_ = 0;
  torch::Tensor emb_w_, emb_s_, final_norm_, screen_q_, screen_s_;
  Blocks8 screen_x_;
  std::vector<Layer> layers_;
  std::vector<float> h_, x_, tmp_, qkv_, attn_, gu_, act_, cos_, sin_, scores_;
  std::vector<int16_t> xq_;
  std::unique_ptr<Pool> pool_;
};

// The 4-bit screening product alone (tests and benchmarks): x [K] fp32, codes [N, K / 2], scales [N, K / 32].
torch::Tensor q4_matvec(torch::Tensor x, torch::Tensor codes, torch::Tensor scales) {
  TORCH_CHECK(x.dim() == 1, "x [K]");
  const int64_t K = x.size(0), N = codes.size(0);
  check_screen(codes, scales, N, K);
  auto xc = x.contiguous().to(torch::kFloat);
  auto cc = codes.contiguous();
  auto sc = scales.contiguous();
  Blocks8 a;
  a.resize(K);
  quantize_blocks8(xc.data_ptr<float>(), K, a);
  auto y = torch::empty({N}, torch::kFloat);
  gemv_q4(nullptr, a, cc.data_ptr<uint8_t>(), reinterpret_cast<const uint16_t*>(sc.data_ptr()), y.data_ptr<float>(), N, K);
  return y;
}

// One int8 matrix-vector product (the engine's single-token linear layers outside the fused step).
torch::Tensor int8_matvec(torch::Tensor x, torch::Tensor w, torch::Tensor scale) {
  TORCH_CHECK(x.dim() == 1 && w.dim() == 2 && w.size(1) == x.size(0), "x [K], w [N, K]");
  TORCH_CHECK(w.scalar_type() == torch::kChar && scale.scalar_type() == torch::kFloat, "int8 weight, fp32 scale");
  auto xc = x.contiguous().to(torch::kFloat);
  auto wc = w.contiguous();
  auto sc = scale.contiguous();
  const int64_t N = wc.size(0), K = wc.size(1);
  std::vector<int16_t> xq(K);
  const float xs = quantize16(xc.data_ptr<float>(), xq.data(), K);
  auto y = torch::empty({N}, torch::kFloat);
  gemv_q(nullptr, xq.data(), xs, wc.data_ptr<int8_t>(), sc.data_ptr<float>(), y.data_ptr<float>(), N, K);
  return y;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  pybind11::class_<GemmaStep>(m, "GemmaStep")
      .def(pybind11::init<std::vector<torch::Tensor>, std::vector<std::vector<torch::Tensor>>, std::vector<int64_t>,
                          int64_t, int64_t, int64_t, int64_t, int64_t, double, double, double, double, int64_t,
                          int64_t>())
      .def("forward", &GemmaStep::forward, pybind11::arg("token"), pybind11::arg("pos"), pybind11::arg("logits") = true,
           pybind11::call_guard<pybind11::gil_scoped_release>())
      .def("head", &GemmaStep::head, pybind11::call_guard<pybind11::gil_scoped_release>())
      .def("set_screen_margin", &GemmaStep::set_screen_margin)
      .def("last_rescored", &GemmaStep::last_rescored)
      .def("set_threads", &GemmaStep::set_threads)
      .def("threads", &GemmaStep::threads)
      .def("max_threads", &GemmaStep::max_threads)
      .def("helpers_cpu_seconds", &GemmaStep::helpers_cpu_seconds);
  m.def("int8_matvec", &int8_matvec, pybind11::call_guard<pybind11::gil_scoped_release>());
  m.def("q4_matvec", &q4_matvec, pybind11::call_guard<pybind11::gil_scoped_release>());
}
