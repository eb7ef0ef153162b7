// The Gemma 3 forward pass over llama.cpp's own quantized blocks, as one C++ call per step.
//
// The weights stay as the GGUF file holds them (Q4_K, Q6_K, Q5_0, Q8_0 blocks, memory-mapped): the same bytes per
// token as llama.cpp reads. Each activation row is quantized once per matrix input, as llama.cpp's vec_dot kernels
// expect it: to Q8_0 (32 values, one scale) for the 32-blocks, to Q8_K (256 values, one float scale, sums of each 16)
// for the k-quants; the block formats and the dot products follow ggml-quants.c / ggml-cpu/quants.c
// (ggml-org/llama.cpp). The AVX2 path is portable to any x86-64 CPU since 2013; where the build found AVX-512 VNNI
// (`vpdpbusd`), the unsigned-by-signed byte products take one instruction instead of two.
//
// One step handles T tokens at once: the prompt (prefill) or the one token just sampled (decode). Every matrix is
// read once per step whatever T is: each weight row is multiplied with all T quantized activation rows while it sits
// in cache, so the prompt's cost per token is arithmetic, not memory traffic.
//
// Threads: the matrix products run on the step's own small pool (`Pool`). The calling thread works too and hands rows
// out in chunks from one atomic counter, so a helper thread that another process has pushed off its core costs
// nothing unless it holds a chunk at that moment: the caller takes every chunk nobody has claimed. Idle helpers spin
// briefly, then yield, then sleep on a futex. A decode step hands out one job per layer: every thread first computes
// the attention half itself (the same bits in each), then the threads share the feed-forward in units (a slice of
// gate/up rows, their GELU and the slice's share of W_down). The caller adds the shares in unit order, so the sums
// do not depend on which thread took which unit. Splitting the attention half too would take a second wait: the RMS
// norm after W_o needs the whole sum over heads before any feed-forward row can start (docs/inference.md). A prompt's
// layer is 8 jobs (prompt_layers): the four products and one per-token job between each two, which also quantizes
// its token's row for the next product.
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
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "the native step needs AVX2, FMA and F16C"
#endif

namespace {

template <class... A>
[[noreturn]] void fail(const A&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  throw std::runtime_error(out.str());
}
#define CHECK(cond, ...) \
  do {                   \
    if (!(cond)) fail(__VA_ARGS__); \
  } while (0)

// ggml's type ids (ggml.h: enum ggml_type)
constexpr int kF32 = 0, kQ5_0 = 6, kQ8_0 = 8, kQ4_K = 12, kQ6_K = 14;
constexpr int64_t QK = 32, QKK = 256;
constexpr int64_t kParallelTokens = 4;  // tokens from which per-token work (norms, rope, GELU, quantization) is split

inline float fp16(uint16_t h) { return _cvtsh_ss(h); }
inline uint16_t to_fp16(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }
inline uint16_t read16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

int64_t block_size(int type) { return type == kQ4_K || type == kQ6_K ? QKK : QK; }

int64_t block_bytes(int type) {
  switch (type) {
    case kQ5_0:
      return 22;  // fp16 d, qh[4], qs[16]
    case kQ8_0:
      return 34;  // fp16 d, qs[32]
    case kQ4_K:
      return 144;  // fp16 d, fp16 dmin, scales[12], qs[128]
    case kQ6_K:
      return 210;  // ql[128], qh[64], scales[16], fp16 d
    default:
      return 0;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Dequantization, in the order of gguf.quants' numpy code (float32 throughout, no fused multiply-add: the build
// passes -ffp-contract=off), so that both give the same bits.

inline void q4k_scale_min(int j, const uint8_t* q, int* sc, int* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

void dequantize_block(int type, const uint8_t* b, float* y) {
  switch (type) {
    case kQ8_0: {
      const float d = fp16(read16(b));
      for (int i = 0; i < 32; ++i) y[i] = static_cast<float>(static_cast<int8_t>(b[2 + i])) * d;
      break;
    }
    case kQ5_0: {
      const float d = fp16(read16(b));
      uint32_t qh;
      std::memcpy(&qh, b + 2, 4);
      const uint8_t* qs = b + 6;
      for (int j = 0; j < 16; ++j) {
        const int x0 = ((qs[j] & 0x0F) | (((qh >> j) & 1) << 4)) - 16;
        const int x1 = ((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16;
        y[j] = d * static_cast<float>(x0);
        y[j + 16] = d * static_cast<float>(x1);
      }
      break;
    }
    case kQ4_K: {
      const float d = fp16(read16(b)), dmin = fp16(read16(b + 2));
      const uint8_t* scales = b + 4;
      const uint8_t* q = b + 16;
      for (int j = 0; j < 4; ++j) {
        int sc0, m0, sc1, m1;
        q4k_scale_min(2 * j, scales, &sc0, &m0);
        q4k_scale_min(2 * j + 1, scales, &sc1, &m1);
        const float d0 = d * static_cast<float>(sc0), dm0 = dmin * static_cast<float>(m0);
        const float d1 = d * static_cast<float>(sc1), dm1 = dmin * static_cast<float>(m1);
        for (int l = 0; l < 32; ++l) {
          const float p0 = d0 * static_cast<float>(q[32 * j + l] & 0xF);
          const float p1 = d1 * static_cast<float>(q[32 * j + l] >> 4);
          y[64 * j + l] = p0 - dm0;
          y[64 * j + 32 + l] = p1 - dm1;
        }
      }
      break;
    }
    case kQ6_K: {
      const uint8_t* ql = b;
      const uint8_t* qh = b + 128;
      const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
      const float d = fp16(read16(b + 208));
      for (int n = 0; n < 2; ++n) {
        for (int l = 0; l < 32; ++l) {
          const int is = l / 16;
          const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
          const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
          const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
          const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
          y[128 * n + l] = (d * static_cast<float>(sc[is])) * static_cast<float>(q1);
          y[128 * n + l + 32] = (d * static_cast<float>(sc[is + 2])) * static_cast<float>(q2);
          y[128 * n + l + 64] = (d * static_cast<float>(sc[is + 4])) * static_cast<float>(q3);
          y[128 * n + l + 96] = (d * static_cast<float>(sc[is + 6])) * static_cast<float>(q4);
        }
        ql += 64;
        qh += 32;
        sc += 8;
      }
      break;
    }
    default:
      CHECK(false, "no dequantization for ggml type ", type);
  }
}

void dequantize_row(int type, const uint8_t* row, float* y, int64_t K) {
  if (type == kF32) {
    std::memcpy(y, row, K * sizeof(float));
    return;
  }
  const int64_t bs = block_size(type), bb = block_bytes(type);
  for (int64_t b = 0; b < K / bs; ++b) dequantize_block(type, row + b * bb, y + b * bs);
}

// ---------------------------------------------------------------------------------------------------------------
// Activations, quantized as llama.cpp's quantize_row_q8_0 / quantize_row_q8_K do, for T rows of K values.

struct Act {
  int64_t T = 0, K = 0;
  std::vector<int8_t> q0, qk;   // Q8_0 and Q8_K codes [T * K]
  std::vector<float> d0, dk;    // scales: per 32 (rounded to fp16, as block_q8_0 stores it), per 256
  std::vector<int32_t> s0;      // sum of each 32-block's codes (the Q5_0 offset)
  std::vector<int16_t> bk;      // sum of each 16 codes (block_q8_K.bsums)
  std::vector<float> ys0, ysk;  // batched path: each 16 values' code sum times its scale, for Q8_0 and Q8_K
  bool has0 = false, hasK = false;
};

// roundf (halves away from zero) of 8 floats, exactly: the truncation plus one where the dropped part is at least 0.5
inline __m256 round_away(__m256 v) {
  const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 sign = _mm256_and_ps(v, _mm256_set1_ps(-0.f));
  const __m256 half = _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.f), _mm256_sub_ps(v, t)), _mm256_set1_ps(0.5f),
                                    _CMP_GE_OQ);
  return _mm256_add_ps(t, _mm256_and_ps(half, _mm256_or_ps(sign, _mm256_set1_ps(1.f))));
}

inline float hmax(__m256 x) {
  __m128 r = _mm_max_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
  r = _mm_max_ps(r, _mm_movehl_ps(r, r));
  r = _mm_max_ss(r, _mm_movehdup_ps(r));
  return _mm_cvtss_f32(r);
}

inline int hsum_i32(__m256i a) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

// four vectors of 8 int32 (each within int8) -> 32 int8 in order (as ggml's quantize_row_q8_0 packs them)
inline void store_i8x32(int8_t* q, __m256i i0, __m256i i1, __m256i i2, __m256i i3) {
  const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q),
                      _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

// Q8_0 of one row, as quantize_row_q8_0_ref computes it (amax / 127, its reciprocal, roundf), 8 values at a time;
// s: each block's code sum, h16: each 16 values' code sum (h16 may be null).
void quantize_q8_0(const float* x, int64_t K, int8_t* q, float* d, int32_t* s, int32_t* h16) {
  const __m256 absmask = _mm256_set1_ps(-0.f);
  for (int64_t b = 0; b < K / QK; ++b) {
    const float* xb = x + b * QK;
    __m256 v[4];
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < 4; ++i) {
      v[i] = _mm256_loadu_ps(xb + 8 * i);
      m = _mm256_max_ps(m, _mm256_andnot_ps(absmask, v[i]));
    }
    const float amax = hmax(m);
    const float db = amax / 127.f;
    const __m256 id = _mm256_set1_ps(db != 0.f ? 1.f / db : 0.f);
    __m256i c[4];
    for (int i = 0; i < 4; ++i) c[i] = _mm256_cvtps_epi32(round_away(_mm256_mul_ps(v[i], id)));
    store_i8x32(q + b * QK, c[0], c[1], c[2], c[3]);
    const int lo = hsum_i32(_mm256_add_epi32(c[0], c[1])), hi = hsum_i32(_mm256_add_epi32(c[2], c[3]));
    d[b] = fp16(to_fp16(db));
    s[b] = lo + hi;
    if (h16 != nullptr) {
      h16[2 * b] = lo;
      h16[2 * b + 1] = hi;
    }
  }
}

// Q8_K of one row, as quantize_row_q8_K_ref computes it (the scale from the signed value of largest magnitude, the
// first such; nearbyint; at most 127), 8 values at a time.
void quantize_q8_K(const float* x, int64_t K, int8_t* q, float* d, int16_t* bsums) {
  const __m256 absmask = _mm256_set1_ps(-0.f);
  for (int64_t b = 0; b < K / QKK; ++b) {
    const float* xb = x + b * QKK;
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < 32; ++i) m = _mm256_max_ps(m, _mm256_andnot_ps(absmask, _mm256_loadu_ps(xb + 8 * i)));
    const float amax = hmax(m);
    int8_t* qb = q + b * QKK;
    if (amax == 0.f) {
      d[b] = 0.f;
      std::memset(qb, 0, 256);
      for (int j = 0; j < 16; ++j) bsums[b * 16 + j] = 0;
      continue;
    }
    float max = 0.f;
    for (int i = 0; i < 32; ++i) {
      const int hit = _mm256_movemask_ps(
          _mm256_cmp_ps(_mm256_andnot_ps(absmask, _mm256_loadu_ps(xb + 8 * i)), _mm256_set1_ps(amax), _CMP_EQ_OQ));
      if (hit) {
        max = xb[8 * i + __builtin_ctz(static_cast<unsigned>(hit))];
        break;
      }
    }
    const float iscale = -127.f / max;
    const __m256 vs = _mm256_set1_ps(iscale);
    const __m256i top = _mm256_set1_epi32(127);
    for (int j = 0; j < 8; ++j) {  // 32 values at a time
      __m256i c[4];
      for (int i = 0; i < 4; ++i) {
        const __m256 r = _mm256_round_ps(_mm256_mul_ps(vs, _mm256_loadu_ps(xb + 32 * j + 8 * i)),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        c[i] = _mm256_min_epi32(_mm256_cvtps_epi32(r), top);
      }
      store_i8x32(qb + 32 * j, c[0], c[1], c[2], c[3]);
      bsums[b * 16 + 2 * j] = static_cast<int16_t>(hsum_i32(_mm256_add_epi32(c[0], c[1])));
      bsums[b * 16 + 2 * j + 1] = static_cast<int16_t>(hsum_i32(_mm256_add_epi32(c[2], c[3])));
    }
    d[b] = 1.f / iscale;
  }
}

void prepare_act(int64_t T, int64_t K, bool need0, bool needK, Act& a) {
  a.T = T;
  a.K = K;
  a.has0 = need0;
  a.hasK = needK;
  if (need0) {
    a.q0.resize(T * K);
    a.d0.resize(T * K / QK);
    a.s0.resize(T * K / QK);
    if (T > 1) a.ys0.resize(T * K / 16);
  }
  if (needK) {
    a.qk.resize(T * K);
    a.dk.resize(T * K / QKK);
    a.bk.resize(T * K / 16);
    if (T > 1) a.ysk.resize(T * K / 16);
  }
}

// Activation row t of x [T, K] into `a` (sized by prepare_act): independent of the other rows.
void quantize_act_row(const float* x, int64_t t, Act& a) {
  const int64_t T = a.T, K = a.K;
  const float* xt = x + t * K;
  if (a.has0) {
    float* d = a.d0.data() + t * (K / QK);
    if (T > 1) {
      thread_local std::vector<int32_t> h16;
      h16.resize(K / 16);
      quantize_q8_0(xt, K, a.q0.data() + t * K, d, a.s0.data() + t * (K / QK), h16.data());
      float* ys = a.ys0.data() + t * (K / 16);
      for (int64_t g = 0; g < K / 16; ++g) ys[g] = static_cast<float>(h16[g]) * d[g / 2];
    } else {
      quantize_q8_0(xt, K, a.q0.data() + t * K, d, a.s0.data() + t * (K / QK), nullptr);
    }
  }
  if (a.hasK) {
    float* d = a.dk.data() + t * (K / QKK);
    const int16_t* bk = a.bk.data() + t * (K / 16);
    quantize_q8_K(xt, K, a.qk.data() + t * K, d, a.bk.data() + t * (K / 16));
    if (T > 1) {
      float* ys = a.ysk.data() + t * (K / 16);
      for (int64_t g = 0; g < K / 16; ++g) ys[g] = static_cast<float>(bk[g]) * d[g / 16];
    }
  }
}

void quantize_act(const float* x, int64_t T, int64_t K, bool need0, bool needK, Act& a) {
  prepare_act(T, K, need0, needK, a);
  for (int64_t t = 0; t < T; ++t) quantize_act_row(x, t, a);
}

// ---------------------------------------------------------------------------------------------------------------
// Row dot products: one weight row (nb blocks) with activation row t.

inline __m256i dpbusd(__m256i acc, __m256i u, __m256i s) {  // acc += sum of 4 (unsigned u) * (signed s), per int32
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpbusd_epi32(acc, u, s);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

inline float hsum(__m256 x) {
  __m128 r = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
  r = _mm_add_ps(r, _mm_movehl_ps(r, r));
  r = _mm_add_ss(r, _mm_movehdup_ps(r));
  return _mm_cvtss_f32(r);
}


// 32 bits -> 32 bytes of 0x00 / 0xFF (bit i -> byte i)
inline __m256i bytes_from_bits(uint32_t x) {
  const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
  __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(x)), shuf);
  bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
  return _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1));
}

float dot_q8_0(const uint8_t* row, int64_t nb, const int8_t* y, const float* yd, const int32_t*) {
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = row + b * 34;
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y + b * 32));
    // |w| * (v with w's sign): unsigned by signed, the same products
    const __m256i p = dpbusd(_mm256_setzero_si256(), _mm256_sign_epi8(w, w), _mm256_sign_epi8(v, w));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(fp16(read16(blk)) * yd[b]), acc);
  }
  return hsum(acc);
}

float dot_q5_0(const uint8_t* row, int64_t nb, const int8_t* y, const float* yd, const int32_t* ys) {
  __m256 acc = _mm256_setzero_ps();
  float offset = 0.f;
  const __m256i low = _mm256_set1_epi8(0x0F), bit4 = _mm256_set1_epi8(0x10);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = row + b * 22;
    uint32_t qh;
    std::memcpy(&qh, blk + 2, 4);
    const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 6));
    __m256i w = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(qs, 4), qs), low);
    w = _mm256_or_si256(w, _mm256_and_si256(bytes_from_bits(qh), bit4));  // 0..31; the value is w - 16
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y + b * 32));
    const float scale = fp16(read16(blk)) * yd[b];
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dpbusd(_mm256_setzero_si256(), w, v)), _mm256_set1_ps(scale), acc);
    offset += scale * static_cast<float>(16 * ys[b]);
  }
  return hsum(acc) - offset;
}

float dot_q4_K(const uint8_t* row, int64_t nb, const int8_t* y, const float* yd, const int16_t* bsums) {
  float sum = 0.f;
  const __m256i low = _mm256_set1_epi8(0x0F);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = row + b * 144;
    const float d = fp16(read16(blk)) * yd[b], dmin = fp16(read16(blk + 2)) * yd[b];
    const uint8_t* scales = blk + 4;
    const uint8_t* q = blk + 16;
    const int8_t* yb = y + b * QKK;
    const int16_t* bs = bsums + b * 16;
    __m256i isum = _mm256_setzero_si256();
    int mins = 0;
    for (int j = 0; j < 4; ++j) {
      int sc0, m0, sc1, m1;
      q4k_scale_min(2 * j, scales, &sc0, &m0);
      q4k_scale_min(2 * j + 1, scales, &sc1, &m1);
      mins += m0 * (bs[4 * j] + bs[4 * j + 1]) + m1 * (bs[4 * j + 2] + bs[4 * j + 3]);
      const __m256i q4 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * j));
      const __m256i lo = _mm256_and_si256(q4, low), hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), low);
      const __m256i p0 = dpbusd(_mm256_setzero_si256(), lo, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(yb + 64 * j)));
      const __m256i p1 =
          dpbusd(_mm256_setzero_si256(), hi, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(yb + 64 * j + 32)));
      isum = _mm256_add_epi32(isum, _mm256_mullo_epi32(p0, _mm256_set1_epi32(sc0)));
      isum = _mm256_add_epi32(isum, _mm256_mullo_epi32(p1, _mm256_set1_epi32(sc1)));
    }
    sum += d * static_cast<float>(hsum_i32(isum)) - dmin * static_cast<float>(mins);
  }
  return sum;
}

float dot_q6_K(const uint8_t* row, int64_t nb, const int8_t* y, const float* yd, const int16_t* bsums) {
  float sum = 0.f;
  const __m256i low = _mm256_set1_epi8(0x0F);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = row + b * 210;
    const uint8_t* ql = blk;
    const uint8_t* qh = blk + 128;
    const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192);
    const float d = fp16(read16(blk + 208)) * yd[b];
    const int8_t* yb = y + b * QKK;
    const int16_t* bs = bsums + b * 16;
    int offset = 0;  // the codes are value + 32: subtract 32 * sum(y) per 16-group, with its scale
    for (int g = 0; g < 16; ++g) offset += sc[g] * bs[g];
    __m256i isum = _mm256_setzero_si256();
    for (int n = 0; n < 2; ++n) {
      const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 64 * n));
      const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 64 * n + 32));
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh + 32 * n));
      const __m256i q[4] = {
          _mm256_or_si256(_mm256_and_si256(l0, low), _mm256_slli_epi16(_mm256_and_si256(h, _mm256_set1_epi8(0x03)), 4)),
          _mm256_or_si256(_mm256_and_si256(l1, low), _mm256_slli_epi16(_mm256_and_si256(h, _mm256_set1_epi8(0x0C)), 2)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low), _mm256_and_si256(h, _mm256_set1_epi8(0x30))),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low),
                          _mm256_srli_epi16(_mm256_and_si256(h, _mm256_set1_epi8(static_cast<char>(0xC0))), 2)),
      };
      for (int k = 0; k < 4; ++k) {
        const int g = 8 * n + 2 * k;  // 16-groups g (first 16 values) and g + 1
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(yb + 128 * n + 32 * k));
        const __m256i p16 = _mm256_maddubs_epi16(q[k], v);  // at most 2 * 63 * 127: no saturation
        const __m256i scl = _mm256_set_m128i(_mm_set1_epi16(sc[g + 1]), _mm_set1_epi16(sc[g]));
        isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p16, scl));
      }
    }
    sum += d * static_cast<float>(hsum_i32(isum) - 32 * offset);
  }
  return sum;
}

// ---------------------------------------------------------------------------------------------------------------

inline void futex_wait(std::atomic<uint32_t>* word, uint32_t expected) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}

inline void futex_wake_all(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}

// The caller plus up to `max_threads - 1` helpers. A job is [0, n) in chunks of `grain`, claimed from `claim_`
// (job number in the high 32 bits, next index in the low 32): a claim succeeds only for the job it was read for, so
// a helper that wakes late never touches a later job with the earlier job's arguments.
//
// A job may carry a tag (>= 0): then every thread taking part first runs the owner's hook with it, on its own, before
// claiming chunks (a decode layer's attention half, computed by every thread so that the layer has one wait). The
// hook's inputs must outlive the job (the tag names them; a helper may still be in the hook when the job is over), and
// whatever it computes must stay in the thread: a late helper's hook may read a tag of a later job, but the caller
// publishes a job only once every chunk of the one before is done, so such a helper claims nothing with it.
class Pool {
 public:
  using Fn = void (*)(const void*, int64_t, int64_t);
  using Hook = void (*)(void* owner, int64_t tag, bool caller);
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
  // Jobs handed to the pool so far (each one a wait for every thread taking part), counted at any thread count.
  int64_t jobs() const { return jobs_; }

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

  // Set once, before the first tagged job.
  void set_hook(Hook hook, void* owner) {
    hook_ = hook;
    owner_ = owner;
  }

  template <class F>
  void run(int64_t n, int64_t grain, const F& f, int64_t tag = -1) {
    grain = std::max<int64_t>(1, grain);
    if (n <= 0) return;
    ++jobs_;
    if (active_.load(std::memory_order_relaxed) == 0 || n <= grain) {
      if (tag >= 0) hook_(owner_, tag, true);
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
    tag_.store(tag, std::memory_order_relaxed);
    claim_.store(static_cast<uint64_t>(job) << 32, std::memory_order_release);
    seq_.store(job);
    if (sleepers_.load() > 0) futex_wake_all(&seq_);
    if (tag >= 0) hook_(owner_, tag, true);
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

  bool open(uint32_t job) const {
    const uint64_t word = claim_.load(std::memory_order_acquire);
    return (word >> 32) == job && static_cast<int64_t>(word & 0xFFFFFFFFu) < n_.load(std::memory_order_relaxed);
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
      const int64_t tag = tag_.load(std::memory_order_acquire);
      if (tag >= 0) {
        if (!open(now)) continue;  // over before this thread woke: skip the hook
        hook_(owner_, tag, false);
      }
      work(now);
    }
  }

  const int max_threads_;
  std::atomic<int> active_;
  std::atomic<bool> stop_{false};
  std::atomic<uint32_t> seq_{0};
  std::atomic<uint32_t> park_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<uint64_t> claim_{0};
  std::atomic<int64_t> done_{0}, n_{0}, grain_{1};
  std::atomic<Fn> fn_{nullptr};
  std::atomic<const void*> ctx_{nullptr};
  std::atomic<int64_t> tag_{-1};
  Hook hook_ = nullptr;
  void* owner_ = nullptr;
  std::vector<std::thread> helpers_;
  int64_t jobs_ = 0;  // the calling thread's count (run is called from one thread at a time)
};

// ---------------------------------------------------------------------------------------------------------------

struct Raw {  // a tensor as the file holds it: `rows` rows of `cols` values (F32, or blocks of a quantized type)
  const void* data;
  int type;
  int64_t rows, cols;
};

struct Matrix {  // N rows of K values in the file's blocks (a view of the mapped file: the caller keeps it alive)
  int type = -1;
  int64_t N = 0, K = 0, row_bytes = 0;
  const uint8_t* data = nullptr;

  bool k_quant() const { return type == kQ4_K || type == kQ6_K; }
};

Matrix make_matrix(const Raw& raw, int64_t K, const std::string& name) {
  Matrix m;
  m.type = raw.type;
  m.K = K;
  m.N = raw.rows;
  CHECK(raw.cols == K, name, ": rows of ", raw.cols, " values where ", K, " were expected");
  if (raw.type == kF32) {
    m.row_bytes = K * 4;
  } else {
    const int64_t bb = block_bytes(raw.type), bs = block_size(raw.type);
    CHECK(bb > 0, name, ": ggml type ", raw.type, " has no kernel here (Q4_K, Q6_K, Q5_0, Q8_0, F32)");
    CHECK(K % bs == 0, name, ": row length ", K, " is not a multiple of the block size ", bs);
    m.row_bytes = K / bs * bb;
  }
  m.data = static_cast<const uint8_t*>(raw.data);
  return m;
}

inline float row_dot(const Matrix& w, int64_t n, const Act& a, int64_t t, const float* xf) {
  const uint8_t* row = w.data + n * w.row_bytes;
  const int64_t K = w.K;
  switch (w.type) {
    case kQ8_0:
      return dot_q8_0(row, K / QK, a.q0.data() + t * K, a.d0.data() + t * (K / QK), nullptr);
    case kQ5_0:
      return dot_q5_0(row, K / QK, a.q0.data() + t * K, a.d0.data() + t * (K / QK), a.s0.data() + t * (K / QK));
    case kQ4_K:
      return dot_q4_K(row, K / QKK, a.qk.data() + t * K, a.dk.data() + t * (K / QKK), a.bk.data() + t * (K / 16));
    case kQ6_K:
      return dot_q6_K(row, K / QKK, a.qk.data() + t * K, a.dk.data() + t * (K / QKK), a.bk.data() + t * (K / 16));
    default: {  // F32: the unquantized activation
      const float* r = reinterpret_cast<const float*>(row);
      const float* x = xf + t * K;
      __m256 acc = _mm256_setzero_ps();
      int64_t k = 0;
      for (; k + 8 <= K; k += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(r + k), _mm256_loadu_ps(x + k), acc);
      float s = hsum(acc);
      for (; k < K; ++k) s += r[k] * x[k];
      return s;
    }
  }
}

// The batched path (a prompt): each weight row is unpacked once into unsigned bytes (codes), one float scale per
// int32 lane of every 32 values (lanes 0-3 cover values 0-15, 4-7 values 16-31) and one offset per 16 values, then
// multiplied with every activation row: sum over chunks of dpbusd(codes, y) * scale * y's scale, plus
// sum over 16-groups of offset * (y's code sum * y's scale). The same products as the per-block kernels above
// (codes + offset = value), in another order.
struct Unpacked {
  std::vector<uint8_t> u;
  std::vector<float> sc, off;
};

#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
constexpr bool kUnsignedBytesUpTo255 = true;  // vpdpbusd does not saturate: Q8_0 as code + 128 is safe
#else
constexpr bool kUnsignedBytesUpTo255 = false;  // pmaddubsw saturates at 2 * 255 * 127: Q8_0 keeps its own kernel
#endif

bool unpackable(int type) { return type == kQ5_0 || type == kQ4_K || type == kQ6_K || (type == kQ8_0 && kUnsignedBytesUpTo255); }

void unpack_row(int type, const uint8_t* row, int64_t K, Unpacked& p) {
  p.u.resize(K);
  p.sc.resize(K / 32 * 8);
  p.off.resize(K / 16);
  auto lanes = [&](int64_t chunk, float lo, float hi) {
    _mm256_storeu_ps(p.sc.data() + chunk * 8, _mm256_set_m128(_mm_set1_ps(hi), _mm_set1_ps(lo)));
  };
  auto store = [&](int64_t at, __m256i v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p.u.data() + at), v); };
  const __m256i low = _mm256_set1_epi8(0x0F);
  if (type == kQ8_0 || type == kQ5_0) {
    const int64_t bb = block_bytes(type);
    for (int64_t b = 0; b < K / 32; ++b) {
      const uint8_t* blk = row + b * bb;
      const float d = fp16(read16(blk));
      if (type == kQ8_0) {
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
        store(32 * b, _mm256_xor_si256(q, _mm256_set1_epi8(static_cast<char>(0x80))));  // q + 128
      } else {
        uint32_t qh;
        std::memcpy(&qh, blk + 2, 4);
        const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 6));
        const __m256i w = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(qs, 4), qs), low);
        store(32 * b, _mm256_or_si256(w, _mm256_and_si256(bytes_from_bits(qh), _mm256_set1_epi8(0x10))));
      }
      lanes(b, d, d);
      p.off[2 * b] = p.off[2 * b + 1] = -(type == kQ8_0 ? 128.f : 16.f) * d;
    }
  } else if (type == kQ4_K) {
    for (int64_t b = 0; b < K / QKK; ++b) {
      const uint8_t* blk = row + b * 144;
      const float d = fp16(read16(blk)), dmin = fp16(read16(blk + 2));
      for (int j = 0; j < 4; ++j) {
        const __m256i q4 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16 + 32 * j));
        store(b * QKK + 64 * j, _mm256_and_si256(q4, low));
        store(b * QKK + 64 * j + 32, _mm256_and_si256(_mm256_srli_epi16(q4, 4), low));
      }
      // the 8 six-bit scales and mins at once, unpacked as ggml's AVX2 q4_K kernel does (bytes 0-7 scales, 8-15
      // mins), then each scale to its chunk's 8 lanes and each min to its two 16-groups: the same products as
      // q4k_scale_min's one at a time (d * sc, -dmin * m), in vectors (the scalar loop was about a third of a row's
      // unpacking and product at 6 tokens)
      uint32_t utmp[4];
      std::memcpy(utmp, blk + 4, 12);
      constexpr uint32_t kmask1 = 0x3f3f3f3f, kmask2 = 0x0f0f0f0f, kmask3 = 0x03030303;
      utmp[3] = ((utmp[2] >> 4) & kmask2) | (((utmp[1] >> 6) & kmask3) << 4);
      const uint32_t uaux = utmp[1] & kmask1;
      utmp[1] = (utmp[2] & kmask2) | (((utmp[0] >> 6) & kmask3) << 4);
      utmp[2] = uaux;
      utmp[0] &= kmask1;
      const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(utmp));
      const __m256 scs = _mm256_mul_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(packed)));
      const __m256 mins =
          _mm256_mul_ps(_mm256_set1_ps(-dmin), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(packed, 8))));
      for (int j = 0; j < 8; ++j)
        _mm256_storeu_ps(p.sc.data() + (b * 8 + j) * 8, _mm256_permutevar8x32_ps(scs, _mm256_set1_epi32(j)));
      const __m256 lo = _mm256_unpacklo_ps(mins, mins), hi = _mm256_unpackhi_ps(mins, mins);
      _mm256_storeu_ps(p.off.data() + b * 16, _mm256_permute2f128_ps(lo, hi, 0x20));
      _mm256_storeu_ps(p.off.data() + b * 16 + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
    }
  } else {  // Q6_K
    for (int64_t b = 0; b < K / QKK; ++b) {
      const uint8_t* blk = row + b * 210;
      const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192);
      const float d = fp16(read16(blk + 208));
      for (int n = 0; n < 2; ++n) {
        const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 64 * n));
        const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 64 * n + 32));
        const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + 32 * n));
        const int64_t at = b * QKK + 128 * n;
        store(at, _mm256_or_si256(_mm256_and_si256(l0, low), _mm256_slli_epi16(_mm256_and_si256(h, _mm256_set1_epi8(0x03)), 4)));
        store(at + 32, _mm256_or_si256(_mm256_and_si256(l1, low), _mm256_slli_epi16(_mm256_and_si256(h, _mm256_set1_epi8(0x0C)), 2)));
        store(at + 64, _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low), _mm256_and_si256(h, _mm256_set1_epi8(0x30))));
        store(at + 96, _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low),
                                       _mm256_srli_epi16(_mm256_and_si256(h, _mm256_set1_epi8(static_cast<char>(0xC0))), 2)));
      }
      // the 16 scales in two vectors (d * sc, -32 d * sc, as one at a time), each chunk's lanes picked from them
      const __m128i sc16 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(sc));
      const __m256 s0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc16));
      const __m256 s1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sc16, 8)));
      const __m256 f[2] = {_mm256_mul_ps(_mm256_set1_ps(d), s0), _mm256_mul_ps(_mm256_set1_ps(d), s1)};
      for (int c = 0; c < 8; ++c) {
        const int j = 2 * (c & 3);
        _mm256_storeu_ps(p.sc.data() + (b * 8 + c) * 8,
                         _mm256_permutevar8x32_ps(f[c >> 2], _mm256_setr_epi32(j, j, j, j, j + 1, j + 1, j + 1, j + 1)));
      }
      const __m256 m32 = _mm256_set1_ps(-32.f * d);
      _mm256_storeu_ps(p.off.data() + b * 16, _mm256_mul_ps(m32, s0));
      _mm256_storeu_ps(p.off.data() + b * 16 + 8, _mm256_mul_ps(m32, s1));
    }
  }
}

// R activation rows at once (R <= 4): each chunk of weight codes and its scales are loaded once for the R rows, and
// each row has its own chain of sums, in the same order whatever R is (so a token's value does not depend on how
// the prompt's tokens were grouped). A prompt's tokens go four at a time, the rest (T % 4) in one pass of their own:
// one row alone is one chain of dependent multiply-adds, which the core waits on (one pass of two costs about what
// one of one does).
template <int R>
inline void dot_unpacked_rows(const Unpacked& p, int64_t K, const int8_t* y, const float* yd, int64_t nd, int shift,
                              const float* ys16, float* out) {
  __m256 acc[R];
  for (int t = 0; t < R; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t c = 0; c < K / 32; ++c) {
    const __m256i u = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.u.data() + 32 * c));
    const __m256 sc = _mm256_loadu_ps(p.sc.data() + 8 * c);
    for (int t = 0; t < R; ++t) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y + t * K + 32 * c));
      const __m256 scale = _mm256_mul_ps(sc, _mm256_set1_ps(yd[t * nd + (c >> shift)]));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dpbusd(_mm256_setzero_si256(), u, v)), scale, acc[t]);
    }
  }
  for (int t = 0; t < R; ++t) {
    const float* ys = ys16 + t * (K / 16);
    __m256 off = _mm256_setzero_ps();
    int64_t g = 0;
    for (; g + 8 <= K / 16; g += 8) off = _mm256_fmadd_ps(_mm256_loadu_ps(p.off.data() + g), _mm256_loadu_ps(ys + g), off);
    float sum = hsum(acc[t]) + hsum(off);
    for (; g < K / 16; ++g) sum += p.off[g] * ys[g];
    out[t] = sum;
  }
}

struct Out {
  const Matrix* w;
  float* y;     // y[t * ldy + n]
  int64_t ldy;
};

// y_i = W_i x for every output i, T activation rows at once, as one job on the pool: each weight row is read once
// and multiplied with every activation row while it is in cache.
constexpr int64_t kGroup = 8;  // weight rows unpacked together on the batched path
constexpr int64_t kBatchedFrom = 4;  // activation rows from which weight rows are unpacked once and reused (measured crossing 3-4)

// The activation forms w's kernel reads: Q8_0 codes (Q8_0 and Q5_0 rows), Q8_K codes (k-quants), neither (F32).
inline void add_needs(const Matrix& w, bool& need0, bool& needK) {
  need0 |= w.type == kQ8_0 || w.type == kQ5_0;
  needK |= w.k_quant();
}

// `act` as the kernels of these matrices want x (T rows of K values): sized here, each row then filled by
// quantize_act_row, independently of the others (so a prompt's per-token job can quantize its own row).
void prepare_for(int64_t T, int64_t K, std::initializer_list<const Matrix*> users, Act& act) {
  bool need0 = false, needK = false;
  for (const Matrix* w : users) add_needs(*w, need0, needK);
  prepare_act(T, K, need0, needK, act);
}

// One row x of K values quantized as the kernels of these matrices want it (a decode step's input).
void quantize_for(const float* x, int64_t K, std::initializer_list<const Matrix*> users, Act& act) {
  prepare_for(1, K, users, act);
  quantize_act_row(x, 0, act);
}

// quantized: `act` already holds x as prepare_for for these matrices sized it, every row quantized (a prompt's
// layer does that in the per-token job before the product, which saves a job: one wait).
void matmul(Pool* pool, const std::vector<Out>& outs, const float* x, int64_t T, int64_t K, Act& act,
            bool quantized = false) {
  bool need0 = false, needK = false;
  int64_t total = 0;
  std::vector<int64_t> starts;
  for (const auto& o : outs) {
    CHECK(o.w->K == K, "matrix row length ", o.w->K, " against an input of ", K);
    add_needs(*o.w, need0, needK);
    starts.push_back(total);
    total += o.w->N;
  }
  if (quantized) {
    CHECK(act.T == T && act.K == K && (act.has0 || !need0) && (act.hasK || !needK), "activation not quantized for ",
          "this product");
  } else {
    prepare_act(T, K, need0, needK, act);
    if (T >= kParallelTokens) {
      pool->run(T, 1, [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t) quantize_act_row(x, t, act);
      });
    } else {
      for (int64_t t = 0; t < T; ++t) quantize_act_row(x, t, act);
    }
  }
  const int64_t grain = std::max<int64_t>(16, total / (T > 1 ? 64 : 32));
  pool->run(total, grain, [&](int64_t begin, int64_t end) {
    size_t i = 0;
    for (int64_t r = begin; r < end;) {
      while (i + 1 < outs.size() && r >= starts[i + 1]) ++i;
      while (r < starts[i]) --i;
      const Out& o = outs[i];
      const int64_t n = r - starts[i];
      const Matrix& w = *o.w;
      if (T >= kBatchedFrom && unpackable(w.type)) {
        // Up to kGroup rows of this matrix unpacked together, then four tokens at a time against each of them: the
        // four activation rows stay in L1 while the group's rows use them.
        const int64_t group = std::min({kGroup, end - r, w.N - n});
        thread_local Unpacked p[kGroup];
        for (int64_t g = 0; g < group; ++g) unpack_row(w.type, w.data + (n + g) * w.row_bytes, K, p[g]);
        const bool kq = w.k_quant();
        const int8_t* q = kq ? act.qk.data() : act.q0.data();
        const float* d = kq ? act.dk.data() : act.d0.data();
        const float* ys = kq ? act.ysk.data() : act.ys0.data();
        const int shift = kq ? 3 : 0;  // chunks of 32 per activation scale: 8 (Q8_K) or 1 (Q8_0)
        const int64_t nd = kq ? K / QKK : K / QK;
        int64_t t = 0;
        float got[4];
        for (; t + 4 <= T; t += 4) {
          for (int64_t g = 0; g < group; ++g) {
            dot_unpacked_rows<4>(p[g], K, q + t * K, d + t * nd, nd, shift, ys + t * (K / 16), got);
            for (int k = 0; k < 4; ++k) o.y[(t + k) * o.ldy + n + g] = got[k];
          }
        }
        const int rest = static_cast<int>(T - t);
        for (int64_t g = 0; rest > 0 && g < group; ++g) {
          const float* ysr = ys + t * (K / 16);
          if (rest == 1) dot_unpacked_rows<1>(p[g], K, q + t * K, d + t * nd, nd, shift, ysr, got);
          if (rest == 2) dot_unpacked_rows<2>(p[g], K, q + t * K, d + t * nd, nd, shift, ysr, got);
          if (rest == 3) dot_unpacked_rows<3>(p[g], K, q + t * K, d + t * nd, nd, shift, ysr, got);
          for (int k = 0; k < rest; ++k) o.y[(t + k) * o.ldy + n + g] = got[k];
        }
        r += group;
      } else {
        for (int64_t t = 0; t < T; ++t) o.y[t * o.ldy + n] = row_dot(w, n, act, t, x);
        ++r;
      }
    }
  });
}

void rms(const float* x, const float* w, float* out, int64_t n, float eps) {
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float r = 1.f / std::sqrt(static_cast<float>(ss / n) + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * r * w[i];  // the file's norm weights carry Gemma's "1 +" already
}

void rope(float* x, const float* cos_, const float* sin_, int64_t hd) {
  const int64_t half = hd / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float a = x[i], b = x[i + half];
    x[i] = a * cos_[i] - b * sin_[i];
    x[i + half] = b * cos_[i] + a * sin_[i];
  }
}

inline float dotf(const float* a, const float* b, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  float s = hsum(acc);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// exp(x) for 8 floats: llama.cpp's ggml_v_expf (ggml-cpu/vec.h, MIT, "adapted from arm limited optimized routine"):
// at most 1.45 + 0.5 ulp from expf, +inf above 88.38, 0 below -103.97.
inline __m256 v_expf(__m256 x) {
  const __m256 r = _mm256_set1_ps(0x1.8p23f);
  const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
  const __m256 n = _mm256_sub_ps(z, r);
  const __m256 b =
      _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f), _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
  const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
  const __m256 k = _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_castps_si256(_mm256_set1_ps(1))));
  const __m256i c = _mm256_castps_si256(
      _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.f), n), _mm256_set1_ps(126), _CMP_GT_OQ));
  const __m256 u = _mm256_mul_ps(b, b);
  const __m256 j = _mm256_fmadd_ps(
      _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
                      _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
      u, _mm256_mul_ps(_mm256_set1_ps(0x1.ffffecp-1f), b));
  if (!_mm256_movemask_ps(_mm256_castsi256_ps(c))) return _mm256_fmadd_ps(j, k, k);
  const __m256i g = _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ)),
                                     _mm256_set1_epi32(static_cast<int>(0x82000000u)));
  const __m256 s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f000000)));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
  const __m256i d = _mm256_castps_si256(
      _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.f), n), _mm256_set1_ps(192), _CMP_GT_OQ));
  return _mm256_or_ps(
      _mm256_and_ps(_mm256_castsi256_ps(d), _mm256_mul_ps(s1, s1)),
      _mm256_andnot_ps(_mm256_castsi256_ps(d),
                       _mm256_or_ps(_mm256_and_ps(_mm256_castsi256_ps(c), _mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1)),
                                    _mm256_andnot_ps(_mm256_castsi256_ps(c), _mm256_fmadd_ps(k, j, k)))));
}

// GELU, tanh form (Gemma's gelu_pytorch_tanh): 0.5 x (1 + tanh(y)) with y = sqrt(2 / pi) (x + 0.044715 x^3), written
// as x / (1 + exp(-2 y)) (the same function: 0.5 (1 + tanh(y)) = 1 / (1 + exp(-2 y))), which subtracts nothing, so
// the vectorised exp's 2 ulp stay 2 ulp of the result: within 3e-7 relative of the double-precision GELU wherever
// tanhf's 1 - tanh loses no digits, and closer than it where it does (x < -3). llama.cpp looks GELU up in an fp16
// table instead (ggml-cpu/vec.h ggml_vec_gelu_f32, GGML_GELU_FP16), which moved the guard's perplexity by +0.8 %.
inline __m256 v_gelu(__m256 x) {
  const __m256 k1 = _mm256_set1_ps(-2.f * 0.7978845608028654f);
  const __m256 k3 = _mm256_set1_ps(-2.f * 0.7978845608028654f * 0.044715f);
  const __m256 y = _mm256_mul_ps(x, _mm256_fmadd_ps(_mm256_mul_ps(x, x), k3, k1));  // -2 y
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.f), v_expf(y)));
}

inline float gelu_one(float x) {
  float v[8] = {x};
  _mm256_storeu_ps(v, v_gelu(_mm256_loadu_ps(v)));
  return v[0];
}

// g[i] = gelu(g[i]) * u[i]; a tail of fewer than 8 goes through the same vector code, padded
inline void gelu_mul(float* g, const float* u, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(g + i, _mm256_mul_ps(v_gelu(_mm256_loadu_ps(g + i)), _mm256_loadu_ps(u + i)));
  if (i < n) {
    float a[8] = {}, b[8] = {};
    const size_t bytes = static_cast<size_t>(n - i) * sizeof(float);
    std::memcpy(a, g + i, bytes);
    std::memcpy(b, u + i, bytes);
    _mm256_storeu_ps(a, _mm256_mul_ps(v_gelu(_mm256_loadu_ps(a)), _mm256_loadu_ps(b)));
    std::memcpy(g + i, a, bytes);
  }
}

// x[i] = exp(x[i] - m) for i < n; returns their sum, added in order (as the scalar loop did: the sum in 8 lanes moved
// the guard text's perplexity from +0.20 % to +0.54 % of llama.cpp's, the 8-bit activations' noise amplifying it).
inline float exp_sub_sum(float* x, int64_t n, float m) {
  const __m256 vm = _mm256_set1_ps(m);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = v_expf(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
    _mm256_storeu_ps(x + i, e);
  }
  for (; i < n; ++i) x[i] = std::exp(x[i] - m);
  float sum = 0.f;
  for (i = 0; i < n; ++i) sum += x[i];
  return sum;
}

struct Layer {
  const float *attn_norm, *q_norm, *k_norm, *post_attn_norm, *ffn_norm, *post_ffn_norm;
  Matrix q, k, v, o, gate, up, down;
  int64_t window;  // 0: global attention
  int64_t rope_kind = 0;  // index of its inv_freq among the model's distinct ones (rope_freqs_)
  std::vector<float> inv_freq, k_cache, v_cache;
  // W_down cut into column ranges for a decode step's feed-forward units (see split_columns)
  std::vector<uint8_t> down_parts;
};

// W's columns in `parts` equal ranges of whole blocks, each range's rows stored together ([part][row][range's
// blocks]): a decode step's feed-forward unit multiplies one range, reading it front to back instead of a piece of
// every row of the file's layout.
std::vector<uint8_t> split_columns(const Matrix& w, int64_t parts) {
  const int64_t part_bytes = w.row_bytes / parts;
  std::vector<uint8_t> out(w.N * w.row_bytes);
  for (int64_t p = 0; p < parts; ++p)
    for (int64_t n = 0; n < w.N; ++n)
      std::memcpy(out.data() + (p * w.N + n) * part_bytes, w.data + n * w.row_bytes + p * part_bytes, part_bytes);
  return out;
}

// The output head's 4-bit screening copy, made at load from a Q8_0 head: per block of 32, code c = q / 16 rounded,
// + 8, at most 15, standing for (c - 8) * 16 * d with the block's own scale d (kept apart, as fp16, so that scoring
// never touches the Q8_0 rows). Each decode step scores every row from it (about 0.53 of the Q8_0 bytes), then
// recomputes with the Q8_0 kernel, exactly as without the copy, every row that scored within `margin` of the best (at
// most `cap`, the best-scored): the idea of SVD-softmax (Shim et al., NeurIPS 2017): preview every row cheaply,
// compute the candidates exactly.
//
// Rows are stored eight at a time, interleaved so that one byte product scores eight rows (one per 32-bit lane):
// per group of 8 rows, per pair of blocks p, per k in 0..7, 32 bytes whose bytes 4r..4r+3 hold row r's values
// 4k..4k+3 of block 2p (low nibbles) and of block 2p + 1 (high nibbles); each block's 8 scales together. A block's
// products are summed exactly as integers (at most 8 x 2 x 15 x 127 per 16-bit lane before the last step), less 8 x
// the activation's code sum, then scaled once per block: no horizontal sums, no per-row scalar work. (One row at a
// time, 2026-12-01: about 45 ns a row, the core's arithmetic, not the memory, being the limit.)
constexpr int64_t kScreenRows = 8;
struct Screen {
  std::vector<uint8_t> codes;  // [groups][K / 64][8 (k)][32]
  std::vector<uint16_t> d;     // [groups][K / 32][8 rows] (0 for the rows past N that pad the last group)
  int64_t N = 0, K = 0, groups = 0;
};

// 8 x 8 32-bit elements: r[i] element k -> r[k] element i
inline void transpose8x8_epi32(__m256i r[8]) {
  __m256i t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);
    u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);
    u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
    u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2x128_si256(u[i], u[i + 4], 0x20);
    r[i + 4] = _mm256_permute2x128_si256(u[i], u[i + 4], 0x31);
  }
}

void build_screen(Pool* pool, const Matrix& w, Screen& s) {
  const int64_t nb = w.K / 32, np = w.K / 64;
  s.N = w.N;
  s.K = w.K;
  s.groups = (w.N + kScreenRows - 1) / kScreenRows;
  s.codes.resize(s.groups * kScreenRows * w.K / 2);
  s.d.resize(s.groups * nb * kScreenRows);
  // code = (q + 128 + 8) >> 4, at most 15: q / 16 rounded (halves up), shifted to 0..15
  pool->run(s.groups, 512, [&](int64_t begin, int64_t end) {
    const __m256i bias = _mm256_set1_epi8(static_cast<char>(0x80)), eight = _mm256_set1_epi8(8);
    const __m256i low = _mm256_set1_epi8(0x0F);
    for (int64_t g = begin; g < end; ++g) {
      uint8_t* out = s.codes.data() + g * kScreenRows * (w.K / 2);
      uint16_t* ds = s.d.data() + g * nb * kScreenRows;
      for (int64_t p = 0; p < np; ++p) {
        __m256i c[2][8];
        for (int half = 0; half < 2; ++half) {
          const int64_t b = 2 * p + half;
          for (int r = 0; r < 8; ++r) {
            const int64_t n = g * kScreenRows + r;
            if (n >= w.N) {
              c[half][r] = _mm256_setzero_si256();
              ds[b * kScreenRows + r] = 0;
              continue;
            }
            const uint8_t* blk = w.data + n * w.row_bytes + b * 34;
            const __m256i u = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2)), bias);
            c[half][r] = _mm256_and_si256(_mm256_srli_epi16(_mm256_adds_epu8(u, eight), 4), low);
            ds[b * kScreenRows + r] = read16(blk);
          }
          transpose8x8_epi32(c[half]);
        }
        for (int k = 0; k < 8; ++k)
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + (p * 8 + k) * 32),
                              _mm256_or_si256(c[0][k], _mm256_slli_epi16(c[1][k], 4)));
      }
    }
  });
}

// The activation (Q8_0: codes q, scales d, code sums per 32) as the screen's kernel takes it.
struct ScreenInput {
  std::vector<int32_t> y4;    // [K / 4]: each 4 codes as one 32-bit word (broadcast to every row's lane)
  std::vector<int32_t> off;   // [K / 32]: 8 x each block's code sum (the codes stand for c - 8)
  std::vector<float> scale;   // [K / 32]: 16 x each block's scale
};

void prepare_screen_input(const int8_t* q, const float* d, const int32_t* sums, int64_t K, ScreenInput& in) {
  in.y4.resize(K / 4);
  in.off.resize(K / 32);
  in.scale.resize(K / 32);
  std::memcpy(in.y4.data(), q, K);
  for (int64_t b = 0; b < K / 32; ++b) {
    in.off[b] = 8 * sums[b];
    in.scale[b] = 16.f * d[b];
  }
}

// Scores of group g's 8 rows into out[0..8).
inline void screen_group(const Screen& sc, int64_t g, const ScreenInput& in, float* out) {
  const int64_t nb = sc.K / 32, np = sc.K / 64;
  const uint8_t* codes = sc.codes.data() + g * kScreenRows * (sc.K / 2);
  const uint16_t* ds = sc.d.data() + g * nb * kScreenRows;
  const __m256i low = _mm256_set1_epi8(0x0F);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t p = 0; p < np; ++p) {
    const int32_t* y0 = in.y4.data() + 16 * p;  // block 2p's eight words, then block 2p + 1's
    // the group two ahead, as this one is used (the loads of one row group at a time left the core waiting on
    // memory: 5.5-6.8 ms a pass with this, 7.4-7.6 without, one thread)
    const char* ahead = reinterpret_cast<const char*>(codes + 2 * kScreenRows * (sc.K / 2) + p * 256);
    for (int line = 0; line < 256; line += 64) _mm_prefetch(ahead + line, _MM_HINT_T0);
    if ((p & 1) == 0) _mm_prefetch(reinterpret_cast<const char*>(ds + 2 * nb * kScreenRows + p * 16), _MM_HINT_T0);
    __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
    for (int k = 0; k < 8; ++k) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + (p * 8 + k) * 32));
      const __m256i lo = _mm256_and_si256(v, low), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
      s0 = _mm256_dpbusd_epi32(s0, lo, _mm256_set1_epi32(y0[k]));
      s1 = _mm256_dpbusd_epi32(s1, hi, _mm256_set1_epi32(y0[8 + k]));
#else
      // 16-bit sums: each product pair at most 2 x 15 x 127 = 3,810, eight of them 30,480: no overflow
      s0 = _mm256_add_epi16(s0, _mm256_maddubs_epi16(lo, _mm256_set1_epi32(y0[k])));
      s1 = _mm256_add_epi16(s1, _mm256_maddubs_epi16(hi, _mm256_set1_epi32(y0[8 + k])));
#endif
    }
#if !(defined(__AVX512VNNI__) && defined(__AVX512VL__))
    s0 = _mm256_madd_epi16(s0, _mm256_set1_epi16(1));
    s1 = _mm256_madd_epi16(s1, _mm256_set1_epi16(1));
#endif
    const int64_t b0 = 2 * p, b1 = 2 * p + 1;
    const __m256i i0 = _mm256_sub_epi32(s0, _mm256_set1_epi32(in.off[b0]));
    const __m256i i1 = _mm256_sub_epi32(s1, _mm256_set1_epi32(in.off[b1]));
    const __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ds + b0 * kScreenRows)));
    const __m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ds + b1 * kScreenRows)));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i0), _mm256_mul_ps(w0, _mm256_set1_ps(in.scale[b0])), acc);
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i1), _mm256_mul_ps(w1, _mm256_set1_ps(in.scale[b1])), acc);
  }
  _mm256_storeu_ps(out, acc);
}

// Rows [begin, end) of the copy's scores into out[begin, end); begin a multiple of kScreenRows.
void screen_rows(const Screen& sc, int64_t begin, int64_t end, const ScreenInput& in, float* out) {
  int64_t n = begin;
  for (; n + kScreenRows <= end; n += kScreenRows) screen_group(sc, n / kScreenRows, in, out + n);
  if (n < end) {
    float tail[kScreenRows];
    screen_group(sc, n / kScreenRows, in, tail);
    std::memcpy(out + n, tail, (end - n) * sizeof(float));
  }
}

constexpr int64_t kHeadChunk = 2048;  // head rows per unit (a multiple of kScreenRows) of the screened head's scoring job
constexpr int64_t kHeadRecomputeJob = 1024;  // rows recomputed exactly from which that goes to the pool
constexpr int64_t kKeysJobFrom = 16;  // prompt tokens from which their keys' norm and rope are a job of their own
constexpr int64_t kSlice = 256;  // feed-forward rows per unit of a decode step's layer job (one Q8_K block of g)

class GemmaModel {
 public:
  // tensors: the GGUF's tensors by name (quantized ones as uint8 [rows, row bytes], F32 as float); types: their ggml
  // type ids; config: the hyperparameters the Python side read from the file's metadata.
  GemmaModel(const std::unordered_map<std::string, Raw>& tensors, const std::unordered_map<std::string, double>& config,
             int64_t max_len, int64_t max_threads)
      : max_len_(max_len), pool_(std::make_unique<Pool>(static_cast<int>(std::clamp<int64_t>(max_threads, 1, 256)))) {
    auto cfg = [&](const char* key) {
      auto it = config.find(key);
      CHECK(it != config.end(), "config: missing ", key);
      return it->second;
    };
    auto tensor = [&](const std::string& name) -> const Raw& {
      auto it = tensors.find(name);
      CHECK(it != tensors.end(), "missing tensor ", name);
      return it->second;
    };
    auto vec = [&](const std::string& name, int64_t n) {
      const Raw& t = tensor(name);
      CHECK(t.type == kF32 && t.rows * t.cols == n, name, ": F32 [", n, "]");
      return static_cast<const float*>(t.data);
    };
    auto mat = [&](const std::string& name, int64_t K) { return make_matrix(tensor(name), K, name); };
    hidden_ = static_cast<int64_t>(cfg("hidden"));
    n_heads_ = static_cast<int64_t>(cfg("heads"));
    n_kv_ = static_cast<int64_t>(cfg("kv_heads"));
    hd_ = static_cast<int64_t>(cfg("head_dim"));
    inter_ = static_cast<int64_t>(cfg("ffn"));
    eps_ = static_cast<float>(cfg("eps"));
    scaling_ = static_cast<float>(cfg("attn_scale"));
    embed_scale_ = static_cast<float>(cfg("embed_scale"));
    const int64_t n_layers = static_cast<int64_t>(cfg("layers"));
    const int64_t window = static_cast<int64_t>(cfg("sliding_window"));
    const int64_t pattern = static_cast<int64_t>(cfg("sliding_pattern"));
    const double base_global = cfg("rope_base"), base_local = cfg("rope_base_local");
    const double rope_factor = cfg("rope_factor");  // linear scaling of the global layers' positions (1: none)
    CHECK(n_kv_ > 0 && n_heads_ % n_kv_ == 0, "heads must be a multiple of the kv heads");
    CHECK(hd_ % 2 == 0, "even head_dim");
    embed_ = mat("token_embd.weight", hidden_);
    head_ = tensors.count("output.weight") ? mat("output.weight", hidden_) : embed_;
    vocab_ = head_.N;
    output_norm_ = vec("output_norm.weight", hidden_);
    const int64_t qd = n_heads_ * hd_, kvd = n_kv_ * hd_;
    for (int64_t i = 0; i < n_layers; ++i) {
      const std::string p = "blk." + std::to_string(i) + ".";
      Layer L;
      L.attn_norm = vec(p + "attn_norm.weight", hidden_);
      L.q_norm = vec(p + "attn_q_norm.weight", hd_);
      L.k_norm = vec(p + "attn_k_norm.weight", hd_);
      L.post_attn_norm = vec(p + "post_attention_norm.weight", hidden_);
      L.ffn_norm = vec(p + "ffn_norm.weight", hidden_);
      L.post_ffn_norm = vec(p + "post_ffw_norm.weight", hidden_);
      L.q = mat(p + "attn_q.weight", hidden_);
      L.k = mat(p + "attn_k.weight", hidden_);
      L.v = mat(p + "attn_v.weight", hidden_);
      L.o = mat(p + "attn_output.weight", qd);
      L.gate = mat(p + "ffn_gate.weight", hidden_);
      L.up = mat(p + "ffn_up.weight", hidden_);
      L.down = mat(p + "ffn_down.weight", inter_);
      CHECK(L.q.N == qd && L.k.N == kvd && L.v.N == kvd && L.o.N == hidden_ && L.gate.N == inter_ &&
                      L.up.N == inter_ && L.down.N == hidden_,
                  p, ": matrix shapes do not match the config");
      const bool global = pattern > 0 && (i + 1) % pattern == 0;
      L.window = global ? 0 : window;
      const double base = global ? base_global : base_local;
      const double scale = global ? rope_factor : 1.0;
      for (int64_t j = 0; j < hd_ / 2; ++j) {
        const float inv = static_cast<float>(1.0 / std::pow(base, static_cast<double>(2 * j) / static_cast<double>(hd_)));
        L.inv_freq.push_back(static_cast<float>(inv / scale));
      }
      L.rope_kind = -1;
      for (size_t k = 0; k < rope_freqs_.size() && L.rope_kind < 0; ++k)
        if (rope_freqs_[k] == L.inv_freq) L.rope_kind = static_cast<int64_t>(k);
      if (L.rope_kind < 0) {
        L.rope_kind = static_cast<int64_t>(rope_freqs_.size());
        rope_freqs_.push_back(L.inv_freq);
      }
      L.k_cache.resize(n_kv_ * max_len_ * hd_);
      L.v_cache.resize(n_kv_ * max_len_ * hd_);
      layers_.push_back(std::move(L));
    }
    one_job_layers_ = true;
    for (const auto& L : layers_)
      one_job_layers_ = one_job_layers_ && L.down.type != kF32 && inter_ % kSlice == 0 &&
                        kSlice % block_size(L.down.type) == 0;
    if (one_job_layers_) {
      for (auto& L : layers_) L.down_parts = split_columns(L.down, inter_ / kSlice);
      layer_inputs_.resize(2 * n_layers * hidden_);
    }
    pool_->set_hook(&GemmaModel::attention_hook, this);
  }

  // Tokens at positions pos0, pos0 + 1, ...: fills the KV cache there. logits: 0 none (a prompt chunk that is not
  // the last), 1 the last token's [V], 2 every token's [T, V], written to `out`.
  void forward(const int64_t* tokens, int64_t T, int64_t pos0, int64_t logits, float* out) {
    CHECK(T > 0, "no tokens");
    const int64_t jobs_before = pool_->jobs();
    struct Count {
      GemmaModel* m;
      int64_t before;
      ~Count() { m->last_jobs_ = m->pool_->jobs() - before; }
    } count{this, jobs_before};
    CHECK(pos0 >= 0 && pos0 + T <= max_len_, "positions beyond the KV cache (", max_len_, ")");
    const int64_t H = hidden_, hd = hd_, qd = n_heads_ * hd_, kvd = n_kv_ * hd_;
    Pool* pool = pool_.get();
    h_.resize(T * H);
    x_.resize(T * H);
    q_.resize(T * qd);
    k_.resize(T * kvd);
    v_.resize(T * kvd);
    attn_.resize(T * qd);
    tmp_.resize(T * H);
    gate_.resize(T * inter_);
    up_.resize(T * inter_);
    const int64_t kinds = static_cast<int64_t>(rope_freqs_.size()), half = hd / 2;
    cos_.resize(kinds * T * half);
    sin_.resize(kinds * T * half);
    scores_.resize(T * n_heads_ * max_len_);
    for (int64_t t = 0; t < T; ++t) CHECK(tokens[t] >= 0 && tokens[t] < embed_.N, "token id out of range");
    const bool decode = T == 1 && one_job_layers_;
    if (decode) {
      dequantize_row(embed_.type, embed_.data + tokens[0] * embed_.row_bytes, h_.data(), H);
      for (int64_t i = 0; i < H; ++i) h_[i] *= embed_scale_;
      step_parity_ ^= 1;
      for (size_t li = 0; li < layers_.size(); ++li) decode_layer(static_cast<int64_t>(li), pos0);
    } else {
      prompt_layers(tokens, T, pos0);
    }
    if (logits == 0) return;
    const int64_t first = logits == 2 ? 0 : T - 1, rows = T - first;
    for (int64_t t = first; t < T; ++t) rms(h_.data() + t * H, output_norm_, x_.data() + (t - first) * H, H, eps_);
    if (rows == 1 && screen_.N > 0 && screen_margin_ > 0.f) {
      screened_head(out);
    } else {
      matmul(pool, {{&head_, out, vocab_}}, x_.data(), rows, H, act_);
      last_rescored_ = vocab_;
    }
  }

  // Make (or drop, with margin 0) the head's screening copy; a Q8_0 head only. Returns whether one is in use.
  bool set_screen(double margin, int64_t cap) {
    screen_margin_ = static_cast<float>(margin);
    screen_cap_ = std::max<int64_t>(1, cap);
    if (margin > 0 && screen_.N == 0 && head_.type == kQ8_0 && hidden_ % 64 == 0) build_screen(pool_.get(), head_, screen_);
    return screen_.N > 0 && screen_margin_ > 0.f;
  }

  int64_t last_rescored() const { return last_rescored_; }
  int64_t last_jobs() const { return last_jobs_; }

  void set_threads(int64_t n) {
    CHECK(n >= 1, "threads: at least 1");
    pool_->set_threads(static_cast<int>(n));
  }
  int64_t threads() const { return pool_->threads(); }
  int64_t max_threads() const { return pool_->max_threads(); }
  int64_t max_len() const { return max_len_; }
  int64_t vocab() const { return vocab_; }
  double helpers_cpu_seconds() { return pool_->helpers_cpu_seconds(); }

 private:
  // f(t) for every token t: on the pool from kParallelTokens tokens on (a prompt), inline below (a decode step).
  template <class F>
  void per_token(int64_t T, const F& f) {
    if (T >= kParallelTokens) {
      pool_->run(T, 1, [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t) f(t);
      });
    } else {
      for (int64_t t = 0; t < T; ++t) f(t);
    }
  }

  // A decode step's thread-private state: every thread taking part computes the attention half itself.
  struct Private {
    std::vector<float> h, x, q, k, v, attn, scores;
    // the rope's angles at rope_pos for each of rope_model's frequency sets (local, global): once per step, not per
    // layer
    std::vector<float> cos, sin;
    uint64_t rope_model = 0;
    int64_t rope_pos = -1;
    Act act;
  };
  static Private& mine() {
    static thread_local Private p;
    return p;
  }

  // One layer of a decode step as one job, so one wait: every thread computes the attention half in full (the same
  // bits in each: same code, same inputs), then the threads share the feed-forward in kSlice-row units: gate/up rows,
  // GELU, and the slice's share of W_down g (the product over those columns). The caller adds the shares in slice
  // order. Splitting the attention half too would need a second wait: the norm after W_o needs every head's share
  // before any feed-forward row can start (docs/inference.md, "Threads on a shared machine").
  void decode_layer(int64_t li, int64_t pos0) {
    const int64_t H = hidden_, slices = inter_ / kSlice;
    Layer& L = layers_[li];
    // The layer's input stays put for the job's hooks (a helper may still be reading it after the job): two steps'
    // worth, by parity, so that a new step never overwrites the one a late helper reads.
    float* input = layer_inputs_.data() + (step_parity_ * static_cast<int64_t>(layers_.size()) + li) * H;
    std::memcpy(input, h_.data(), H * sizeof(float));
    part_.resize(slices * H);
    const int64_t tag = (step_parity_ << 56) | (li << 40) | pos0;
    pool_->run(
        slices, 1,
        [&](int64_t begin, int64_t end) {
          const Private& p = mine();
          for (int64_t sl = begin; sl < end; ++sl) {
            const int64_t n0 = sl * kSlice;
            for (int64_t n = n0; n < n0 + kSlice; ++n) {
              gate_[n] = row_dot(L.gate, n, p.act, 0, p.x.data());
              up_[n] = row_dot(L.up, n, p.act, 0, p.x.data());
            }
            gelu_mul(gate_.data() + n0, up_.data() + n0, kSlice);
            project_part(L.down, L.down_parts, sl, gate_.data() + n0, kSlice, part_.data() + sl * H);
          }
        },
        tag);
    sum_parts(slices, tmp_.data());
    rms(tmp_.data(), L.post_ffn_norm, tmp_.data(), H, eps_);
    const float* after_attention = mine().h.data();
    for (int64_t i = 0; i < H; ++i) h_[i] = after_attention[i] + tmp_[i];
  }

  static void attention_hook(void* owner, int64_t tag, bool caller) {
    static_cast<GemmaModel*>(owner)->attention_half(tag >> 56, (tag >> 40) & 0xFFFF, tag & 0xFFFFFFFFFF, caller);
  }

  // A decode step's attention half of layer li for the token at pos0, into this thread's Private: h = the layer's
  // input + the attention's normed output, x = rms(h) quantized for gate/up. Reads the layer's input and the KV cache
  // before pos0 and writes only this thread's state; the caller alone also writes the token's K and V to the cache
  // (the others keep theirs: nobody reads the cache at pos0 during the step).
  void attention_half(int64_t parity, int64_t li, int64_t pos0, bool caller) {
    const int64_t H = hidden_, hd = hd_, qd = n_heads_ * hd_, kvd = n_kv_ * hd_, group = n_heads_ / n_kv_;
    Layer& L = layers_[li];
    Private& p = mine();
    p.h.resize(H);
    p.x.resize(H);
    p.q.resize(qd);
    p.k.resize(kvd);
    p.v.resize(kvd);
    p.attn.resize(qd);
    p.scores.resize(max_len_);
    const int64_t half = hd / 2;
    if (p.rope_model != id_ || p.rope_pos != pos0) {
      const float pos = static_cast<float>(pos0);
      p.cos.resize(rope_freqs_.size() * half);
      p.sin.resize(rope_freqs_.size() * half);
      for (size_t k = 0; k < rope_freqs_.size(); ++k)
        for (int64_t i = 0; i < half; ++i) {
          const float f = pos * rope_freqs_[k][i];
          p.cos[k * half + i] = std::cos(f);
          p.sin[k * half + i] = std::sin(f);
        }
      p.rope_model = id_;
      p.rope_pos = pos0;
    }
    const float* cos_l = p.cos.data() + L.rope_kind * half;
    const float* sin_l = p.sin.data() + L.rope_kind * half;
    const float* input = layer_inputs_.data() + (parity * static_cast<int64_t>(layers_.size()) + li) * H;
    std::memcpy(p.h.data(), input, H * sizeof(float));
    rms(p.h.data(), L.attn_norm, p.x.data(), H, eps_);
    quantize_for(p.x.data(), H, {&L.q, &L.k, &L.v}, p.act);
    for (int64_t n = 0; n < kvd; ++n) p.k[n] = row_dot(L.k, n, p.act, 0, p.x.data());
    for (int64_t n = 0; n < kvd; ++n) p.v[n] = row_dot(L.v, n, p.act, 0, p.x.data());
    for (int64_t n = 0; n < qd; ++n) p.q[n] = row_dot(L.q, n, p.act, 0, p.x.data());
    for (int64_t g = 0; g < n_kv_; ++g) {
      float* kg = p.k.data() + g * hd;
      rms(kg, L.k_norm, kg, hd, eps_);
      rope(kg, cos_l, sin_l, hd);
      if (caller) {
        std::memcpy(L.k_cache.data() + (g * max_len_ + pos0) * hd, kg, hd * sizeof(float));
        std::memcpy(L.v_cache.data() + (g * max_len_ + pos0) * hd, p.v.data() + g * hd, hd * sizeof(float));
      }
    }
    for (int64_t h = 0; h < n_heads_; ++h) {
      float* qh = p.q.data() + h * hd;
      rms(qh, L.q_norm, qh, hd, eps_);
      rope(qh, cos_l, sin_l, hd);
      const int64_t g = h / group;
      attend_head(L, pos0, g, qh, p.k.data() + g * hd, p.v.data() + g * hd, p.scores.data(), p.attn.data() + h * hd);
    }
    quantize_for(p.attn.data(), qd, {&L.o}, p.act);
    float* o = p.x.data();  // free again once q, k and v are done
    for (int64_t n = 0; n < H; ++n) o[n] = row_dot(L.o, n, p.act, 0, p.attn.data());
    rms(o, L.post_attn_norm, o, H, eps_);
    for (int64_t i = 0; i < H; ++i) p.h[i] += o[i];
    rms(p.h.data(), L.ffn_norm, p.x.data(), H, eps_);
    quantize_for(p.x.data(), H, {&L.gate, &L.up}, p.act);
  }

  // out[n] = sum over columns k0 .. k0 + len of W[n, k] x[k - k0], every row n, from W's column range `part` of
  // split_columns; x quantized here as W's kernel wants
  static void project_part(const Matrix& w, const std::vector<uint8_t>& parts, int64_t part, const float* x,
                           int64_t len, float* out) {
    const int64_t bs = block_size(w.type), bb = block_bytes(w.type), nb = len / bs;
    thread_local std::vector<int8_t> q;
    thread_local std::vector<float> d;
    thread_local std::vector<int32_t> sums;
    thread_local std::vector<int16_t> bsums;
    q.resize(len);
    d.resize(len / QK);
    sums.resize(len / QK);
    bsums.resize(len / 16);
    if (w.k_quant()) {
      quantize_q8_K(x, len, q.data(), d.data(), bsums.data());
    } else {
      quantize_q8_0(x, len, q.data(), d.data(), sums.data(), nullptr);
    }
    const int64_t part_bytes = nb * bb;
    const uint8_t* base = parts.data() + part * w.N * part_bytes;
    for (int64_t n = 0; n < w.N; ++n) {
      const uint8_t* row = base + n * part_bytes;
      switch (w.type) {
        case kQ8_0:
          out[n] = dot_q8_0(row, nb, q.data(), d.data(), nullptr);
          break;
        case kQ5_0:
          out[n] = dot_q5_0(row, nb, q.data(), d.data(), sums.data());
          break;
        case kQ4_K:
          out[n] = dot_q4_K(row, nb, q.data(), d.data(), bsums.data());
          break;
        default:
          out[n] = dot_q6_K(row, nb, q.data(), d.data(), bsums.data());
          break;
      }
    }
  }

  void sum_parts(int64_t parts, float* out) const {
    const int64_t H = hidden_;
    std::memcpy(out, part_.data(), H * sizeof(float));
    for (int64_t p = 1; p < parts; ++p)
      for (int64_t n = 0; n < H; ++n) out[n] += part_[p * H + n];
  }

  // A prompt's (or a step without one-job layers') layers, T tokens at a time: per layer the products (q/k/v,
  // W_o, gate/up, W_down: one job each) and between them one per-token job each, which also quantizes its token's row
  // for the next product: the norms and the residual, the rope and the attention (with its K and V already in the
  // cache), the GELU. 8 jobs per layer (9 from kKeysJobFrom tokens); the products read the same quantized rows as
  // when each product quantized its own input in a job of its own (13 jobs per layer before), so the same bits.
  void prompt_layers(const int64_t* tokens, int64_t T, int64_t pos0) {
    const int64_t H = hidden_, hd = hd_, half = hd / 2, qd = n_heads_ * hd_, kvd = n_kv_ * hd_;
    const int64_t kinds = static_cast<int64_t>(rope_freqs_.size());
    Pool* pool = pool_.get();
    Layer& first = layers_[0];
    prepare_for(T, H, {&first.q, &first.k, &first.v}, act_);
    per_token(T, [&](int64_t t) {
      float* h = h_.data() + t * H;
      dequantize_row(embed_.type, embed_.data + tokens[t] * embed_.row_bytes, h, H);
      for (int64_t i = 0; i < H; ++i) h[i] *= embed_scale_;
      // the rope's angles for this position, once per distinct frequency set (local and global layers), not per layer
      const float pos = static_cast<float>(pos0 + t);
      for (int64_t k = 0; k < kinds; ++k) {
        const std::vector<float>& inv = rope_freqs_[k];
        for (int64_t i = 0; i < half; ++i) {
          const float f = pos * inv[i];
          cos_[(k * T + t) * half + i] = std::cos(f);
          sin_[(k * T + t) * half + i] = std::sin(f);
        }
      }
      rms(h, first.attn_norm, x_.data() + t * H, H, eps_);
      quantize_act_row(x_.data(), t, act_);
    });
    const bool keys_job = T >= kKeysJobFrom;
    for (size_t li = 0; li < layers_.size(); ++li) {
      Layer& L = layers_[li];
      Layer* next = li + 1 < layers_.size() ? &layers_[li + 1] : nullptr;
      const float* cos_l = cos_.data() + L.rope_kind * T * half;
      const float* sin_l = sin_.data() + L.rope_kind * T * half;
      matmul(pool, {{&L.q, q_.data(), qd}, {&L.k, k_.data(), kvd}, {&L.v, v_.data(), kvd}}, x_.data(), T, H, act_,
             true);
      // Every token's key and value into the cache before any token's attention reads them: a job of their own for a
      // long prompt, on the caller for a short one (a few microseconds, less than a wait).
      auto keys = [&](int64_t t) {
        for (int64_t g = 0; g < n_kv_; ++g) {
          float* kg = k_.data() + t * kvd + g * hd;
          rms(kg, L.k_norm, kg, hd, eps_);
          rope(kg, cos_l + t * half, sin_l + t * half, hd);
          std::memcpy(L.k_cache.data() + (g * max_len_ + pos0 + t) * hd, kg, hd * sizeof(float));
          std::memcpy(L.v_cache.data() + (g * max_len_ + pos0 + t) * hd, v_.data() + t * kvd + g * hd,
                      hd * sizeof(float));
        }
      };
      if (keys_job) {
        per_token(T, keys);
      } else {
        for (int64_t t = 0; t < T; ++t) keys(t);
      }
      prepare_for(T, qd, {&L.o}, act_);
      pool->run(T, 1, [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t) {
          for (int64_t h = 0; h < n_heads_; ++h) {
            float* qh = q_.data() + t * qd + h * hd;
            rms(qh, L.q_norm, qh, hd, eps_);
            rope(qh, cos_l + t * half, sin_l + t * half, hd);
          }
          attend_token(L, pos0, t);
          quantize_act_row(attn_.data(), t, act_);
        }
      });
      matmul(pool, {{&L.o, tmp_.data(), H}}, attn_.data(), T, qd, act_, true);
      prepare_for(T, H, {&L.gate, &L.up}, act_);
      per_token(T, [&](int64_t t) {
        float* r = tmp_.data() + t * H;
        float* h = h_.data() + t * H;
        rms(r, L.post_attn_norm, r, H, eps_);
        for (int64_t i = 0; i < H; ++i) h[i] += r[i];
        rms(h, L.ffn_norm, x_.data() + t * H, H, eps_);
        quantize_act_row(x_.data(), t, act_);
      });
      matmul(pool, {{&L.gate, gate_.data(), inter_}, {&L.up, up_.data(), inter_}}, x_.data(), T, H, act_, true);
      prepare_for(T, inter_, {&L.down}, act_);
      per_token(T, [&](int64_t t) {
        gelu_mul(gate_.data() + t * inter_, up_.data() + t * inter_, inter_);
        quantize_act_row(gate_.data(), t, act_);
      });
      matmul(pool, {{&L.down, tmp_.data(), H}}, gate_.data(), T, inter_, act_, true);
      if (next) prepare_for(T, H, {&next->q, &next->k, &next->v}, act_);
      per_token(T, [&](int64_t t) {
        float* r = tmp_.data() + t * H;
        float* h = h_.data() + t * H;
        rms(r, L.post_ffn_norm, r, H, eps_);
        for (int64_t i = 0; i < H; ++i) h[i] += r[i];
        if (next) {
          rms(h, next->attn_norm, x_.data() + t * H, H, eps_);
          quantize_act_row(x_.data(), t, act_);
        }
      });
    }
  }

  // Every query head of token t over the cached keys and values (its own among them).
  void attend_token(Layer& L, int64_t pos0, int64_t t) {
    if ((n_heads_ / n_kv_) % 4 == 0 && hd_ % 64 == 0) {
      for (int64_t h0 = 0; h0 < n_heads_; h0 += 4) attend4(L, pos0, t, h0);  // four query heads at a time
    } else {
      for (int64_t h = 0; h < n_heads_; ++h) attend(L, pos0, t * n_heads_ + h);
    }
  }

  // Attention of query heads h0 .. h0 + 3 of token t, which share one key/value head: each key and value row is
  // loaded once for the four. Per head, the same products summed in the same order as attend (one accumulator per
  // head and key over the same 8-lane steps; values one lane at a time over the positions in order): the same bits.
  void attend4(Layer& L, int64_t pos0, int64_t t, int64_t h0) {
    const int64_t hd = hd_, qd = n_heads_ * hd_, g = h0 / (n_heads_ / n_kv_);
    const int64_t pos = pos0 + t;
    const int64_t start = L.window > 0 ? std::max<int64_t>(0, pos - L.window + 1) : 0;
    const float* kg = L.k_cache.data() + g * max_len_ * hd;
    const float* vg = L.v_cache.data() + g * max_len_ * hd;
    const float* q[4];
    float* sc[4];
    float m[4];
    for (int u = 0; u < 4; ++u) {
      q[u] = q_.data() + t * qd + (h0 + u) * hd;
      sc[u] = scores_.data() + (t * n_heads_ + h0 + u) * max_len_;
      m[u] = -INFINITY;
    }
    int64_t s = start;
    for (; s + 2 <= pos + 1; s += 2) {
      __m256 a[4][2];
      for (int u = 0; u < 4; ++u) a[u][0] = a[u][1] = _mm256_setzero_ps();
      const float* k0 = kg + s * hd;
      for (int64_t i = 0; i < hd; i += 8) {
        const __m256 ka = _mm256_loadu_ps(k0 + i), kb = _mm256_loadu_ps(k0 + hd + i);
        for (int u = 0; u < 4; ++u) {
          const __m256 qv = _mm256_loadu_ps(q[u] + i);
          a[u][0] = _mm256_fmadd_ps(qv, ka, a[u][0]);
          a[u][1] = _mm256_fmadd_ps(qv, kb, a[u][1]);
        }
      }
      for (int u = 0; u < 4; ++u) {
        for (int w = 0; w < 2; ++w) {
          sc[u][s + w] = hsum(a[u][w]) * scaling_;
          m[u] = std::max(m[u], sc[u][s + w]);
        }
      }
    }
    for (; s <= pos; ++s) {
      for (int u = 0; u < 4; ++u) {
        sc[u][s] = dotf(q[u], kg + s * hd, hd) * scaling_;
        m[u] = std::max(m[u], sc[u][s]);
      }
    }
    for (int u = 0; u < 4; ++u) {
      const float inv_sum = 1.f / exp_sub_sum(sc[u] + start, pos + 1 - start, m[u]);
      for (int64_t s2 = start; s2 <= pos; ++s2) sc[u][s2] *= inv_sum;
    }
#if defined(__AVX512VL__)
    constexpr int W = 4;  // 8-lane registers per head per pass: 16 accumulators (32 registers with AVX-512VL)
#else
    constexpr int W = 2;  // 8 accumulators of AVX2's 16 registers
#endif
    for (int64_t i = 0; i < hd; i += 8 * W) {
      __m256 o[4][W];
      for (int u = 0; u < 4; ++u)
        for (int r = 0; r < W; ++r) o[u][r] = _mm256_setzero_ps();
      for (int64_t s2 = start; s2 <= pos; ++s2) {
        const float* vs = vg + s2 * hd + i;
        __m256 v[W];
        for (int r = 0; r < W; ++r) v[r] = _mm256_loadu_ps(vs + 8 * r);
        for (int u = 0; u < 4; ++u) {
          const __m256 p = _mm256_set1_ps(sc[u][s2]);
          for (int r = 0; r < W; ++r) o[u][r] = _mm256_fmadd_ps(p, v[r], o[u][r]);
        }
      }
      for (int u = 0; u < 4; ++u) {
        float* out = attn_.data() + t * qd + (h0 + u) * hd + i;
        for (int r = 0; r < W; ++r) _mm256_storeu_ps(out + 8 * r, o[u][r]);
      }
    }
  }

  // Attention of one query head of one token (job = t * heads + h) over the cached keys and values.
  void attend(Layer& L, int64_t pos0, int64_t job) {
    const int64_t hd = hd_, qd = n_heads_ * hd_, t = job / n_heads_, h = job % n_heads_;
    attend_head(L, pos0 + t, h / (n_heads_ / n_kv_), q_.data() + t * qd + h * hd, nullptr, nullptr,
                scores_.data() + job * max_len_, attn_.data() + t * qd + h * hd);
  }

  // Query qh of the token at `pos` over key/value head g: keys and values from the cache, those at `pos` from
  // k_cur / v_cur where given (a decode step's helpers, which do not write the cache); sc holds the scores.
  void attend_head(const Layer& L, int64_t pos, int64_t g, const float* qh, const float* k_cur, const float* v_cur,
                   float* sc, float* out) const {
    const int64_t hd = hd_;
    const int64_t start = L.window > 0 ? std::max<int64_t>(0, pos - L.window + 1) : 0;
    const int64_t cached_end = k_cur ? pos : pos + 1;  // positions [start, cached_end) come from the cache
    const float* kg = L.k_cache.data() + g * max_len_ * hd;
    const float* vg = L.v_cache.data() + g * max_len_ * hd;
    // Scores four keys at a time (four independent sums, each in dotf's order: the same values as dotf).
    float m = -INFINITY;
    int64_t s = start;
    for (; s + 4 <= cached_end; s += 4) {
      const float* k0 = kg + s * hd;
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      int64_t i = 0;
      for (; i + 8 <= hd; i += 8) {
        const __m256 qv = _mm256_loadu_ps(qh + i);
        a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + i), a0);
        a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + hd + i), a1);
        a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + 2 * hd + i), a2);
        a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + 3 * hd + i), a3);
      }
      float d4[4] = {hsum(a0), hsum(a1), hsum(a2), hsum(a3)};
      for (int u = 0; u < 4; ++u) {
        for (int64_t ii = i; ii < hd; ++ii) d4[u] += qh[ii] * k0[u * hd + ii];
        sc[s + u] = d4[u] * scaling_;
        m = std::max(m, sc[s + u]);
      }
    }
    for (; s < cached_end; ++s) {
      sc[s] = dotf(qh, kg + s * hd, hd) * scaling_;
      m = std::max(m, sc[s]);
    }
    if (k_cur) {
      sc[pos] = dotf(qh, k_cur, hd) * scaling_;
      m = std::max(m, sc[pos]);
    }
    const float inv_sum = 1.f / exp_sub_sum(sc + start, pos + 1 - start, m);
    for (int64_t s2 = start; s2 <= pos; ++s2) sc[s2] *= inv_sum;
    // The weighted sum of values, 64 outputs at a time kept in registers over every position (per output the same
    // order of sums as one position at a time).
    int64_t i = 0;
    for (; i + 64 <= hd; i += 64) {
      __m256 o[8];
      for (int r = 0; r < 8; ++r) o[r] = _mm256_setzero_ps();
      for (int64_t s2 = start; s2 < cached_end; ++s2) {
        const __m256 p = _mm256_set1_ps(sc[s2]);
        const float* vs = vg + s2 * hd + i;
        for (int r = 0; r < 8; ++r) o[r] = _mm256_fmadd_ps(p, _mm256_loadu_ps(vs + 8 * r), o[r]);
      }
      if (v_cur) {
        const __m256 p = _mm256_set1_ps(sc[pos]);
        for (int r = 0; r < 8; ++r) o[r] = _mm256_fmadd_ps(p, _mm256_loadu_ps(v_cur + i + 8 * r), o[r]);
      }
      for (int r = 0; r < 8; ++r) _mm256_storeu_ps(out + i + 8 * r, o[r]);
    }
    for (; i < hd; ++i) {
      float acc = 0.f;
      for (int64_t s2 = start; s2 < cached_end; ++s2) acc += sc[s2] * vg[s2 * hd + i];
      if (v_cur) acc += sc[pos] * v_cur[i];
      out[i] = acc;
    }
  }

  // The head from its 4-bit copy, then the rows near the best exactly. The scoring job also finds each chunk's best
  // score and keeps the chunk's rows within the margin of it: a superset of the rows within the margin of the best
  // of all (a chunk's best is at most that), so the caller filters a few thousand rows instead of scanning all
  // 262,144 scores twice on its own. The rows are then kept in ascending order as before (the cap's nth_element
  // sees the same sequence: the same rows on ties).
  void screened_head(float* out) {
    const int64_t H = hidden_;
    quantize_act(x_.data(), 1, H, true, false, act_);
    prepare_screen_input(act_.q0.data(), act_.d0.data(), act_.s0.data(), H, screen_in_);
    const int64_t chunks = (vocab_ + kHeadChunk - 1) / kHeadChunk;
    chunk_best_.resize(chunks);
    chunk_rows_.resize(chunks);
    const float margin = screen_margin_;
    pool_->run(vocab_, kHeadChunk, [&](int64_t from, int64_t to) {  // one chunk, or all of them on one thread
      for (int64_t begin = from; begin < to; begin += kHeadChunk) {
        const int64_t end = std::min(to, begin + kHeadChunk);
        screen_rows(screen_, begin, end, screen_in_, out);
        float best = -INFINITY;
        for (int64_t n = begin; n < end; ++n) best = std::max(best, out[n]);
        const int64_t c = begin / kHeadChunk;
        chunk_best_[c] = best;
        std::vector<int32_t>& rows = chunk_rows_[c];
        rows.clear();
        const float near = best - margin;
        for (int64_t n = begin; n < end; ++n)
          if (out[n] >= near) rows.push_back(static_cast<int32_t>(n));
      }
    });
    float best = -INFINITY;
    for (int64_t c = 0; c < chunks; ++c) best = std::max(best, chunk_best_[c]);
    const float threshold = best - margin;
    rows_.clear();
    for (int64_t c = 0; c < chunks; ++c)
      if (chunk_best_[c] >= threshold)
        for (const int32_t n : chunk_rows_[c])
          if (out[n] >= threshold) rows_.push_back(n);
    if (static_cast<int64_t>(rows_.size()) > screen_cap_) {
      std::nth_element(rows_.begin(), rows_.begin() + (screen_cap_ - 1), rows_.end(),
                       [out](int64_t a, int64_t b) { return out[a] > out[b]; });
      rows_.resize(screen_cap_);
    }
    const int64_t m = static_cast<int64_t>(rows_.size());
    auto exact = [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) out[rows_[i]] = row_dot(head_, rows_[i], act_, 0, x_.data());
    };
    if (m >= kHeadRecomputeJob) {
      pool_->run(m, 256, exact);  // a prompt's flat first distribution: up to screen_cap_ rows
    } else {
      exact(0, m);  // a decode step's few dozen rows: less than a job's wait
    }
    last_rescored_ = m;
  }

  int64_t max_len_, hidden_ = 0, n_heads_ = 0, n_kv_ = 0, hd_ = 0, inter_ = 0, vocab_ = 0;
  float eps_ = 1e-6f, scaling_ = 1.f, embed_scale_ = 1.f, screen_margin_ = 0.f;
  int64_t screen_cap_ = 4096, last_rescored_ = 0, last_jobs_ = 0;
  Screen screen_;
  ScreenInput screen_in_;
  std::vector<int64_t> rows_;
  std::vector<float> chunk_best_;               // the screened head's best score per chunk of kHeadChunk rows
  std::vector<std::vector<int32_t>> chunk_rows_;  // and its rows within the margin of that
  Matrix embed_, head_;
  const float* output_norm_ = nullptr;
  std::vector<Layer> layers_;
  std::vector<std::vector<float>> rope_freqs_;  // the layers' distinct rope frequencies (Gemma 3: local, global)
  // this model among every one made in the process (a thread's Private outlives models and serves each in turn)
  const uint64_t id_ = [] {
    static std::atomic<uint64_t> made{0};
    return ++made;
  }();
  std::vector<float> h_, x_, q_, k_, v_, attn_, tmp_, gate_, up_, cos_, sin_, scores_, part_;
  bool one_job_layers_ = false;  // a decode step's layers run as one job each (W_down splits into kSlice columns)
  int64_t step_parity_ = 0;      // flips at each decode step: which half of layer_inputs_ it uses
  std::vector<float> layer_inputs_;  // [2][layers][hidden]: each decode layer's input, for its job's hooks
  Act act_;
  std::unique_ptr<Pool> pool_;
};

}  // namespace

// A C interface (ctypes: no Python headers, no torch): every function returns 0, or 1 with the message in `err`.
#define GUARD(...)                                                    \
  try {                                                               \
    __VA_ARGS__;                                                      \
    return 0;                                                         \
  } catch (const std::exception& e) {                                 \
    std::snprintf(err, static_cast<size_t>(errlen), "%s", e.what());  \
    return 1;                                                         \
  }

extern "C" {

const char* rf_isa() {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return "avx512-vnni";
#else
  return "avx2";
#endif
}

int rf_model_new(void** handle, int64_t n, const char** names, const int32_t* types, const void** data,
                 const int64_t* rows, const int64_t* cols, int64_t n_config, const char** keys, const double* values,
                 int64_t max_len, int64_t max_threads, char* err, int64_t errlen) {
  GUARD({
    std::unordered_map<std::string, Raw> tensors;
    for (int64_t i = 0; i < n; ++i) tensors[names[i]] = Raw{data[i], types[i], rows[i], cols[i]};
    std::unordered_map<std::string, double> config;
    for (int64_t i = 0; i < n_config; ++i) config[keys[i]] = values[i];
    *handle = new GemmaModel(tensors, config, max_len, max_threads);
  })
}

void rf_model_free(void* handle) { delete static_cast<GemmaModel*>(handle); }

int rf_model_forward(void* handle, const int64_t* tokens, int64_t T, int64_t pos0, int64_t logits, float* out,
                     char* err, int64_t errlen) {
  GUARD(static_cast<GemmaModel*>(handle)->forward(tokens, T, pos0, logits, out))
}

int rf_model_set_screen(void* handle, double margin, int64_t cap, int32_t* used, char* err, int64_t errlen) {
  GUARD(*used = static_cast<GemmaModel*>(handle)->set_screen(margin, cap) ? 1 : 0)
}

int64_t rf_model_last_rescored(void* handle) { return static_cast<GemmaModel*>(handle)->last_rescored(); }
// Jobs the last forward call handed to the pool: the waits of one step (a decode step: 2 per layer plus the head's)
int64_t rf_model_last_jobs(void* handle) { return static_cast<GemmaModel*>(handle)->last_jobs(); }
int64_t rf_model_vocab(void* handle) { return static_cast<GemmaModel*>(handle)->vocab(); }
int64_t rf_model_threads(void* handle) { return static_cast<GemmaModel*>(handle)->threads(); }
int64_t rf_model_max_threads(void* handle) { return static_cast<GemmaModel*>(handle)->max_threads(); }
void rf_model_set_threads(void* handle, int64_t n) { static_cast<GemmaModel*>(handle)->set_threads(std::max<int64_t>(1, n)); }
double rf_model_helpers_cpu_seconds(void* handle) { return static_cast<GemmaModel*>(handle)->helpers_cpu_seconds(); }

// The kernels alone (tests): the file's blocks back to fp32, W x through the quantized dot products, and the
// activation as the kernels see it (Q8_0 or Q8_K codes times their scales).
int rf_dequantize(int32_t type, const void* raw, int64_t rows, int64_t K, float* out, char* err, int64_t errlen) {
  GUARD({
    Matrix m = make_matrix(Raw{raw, type, rows, K}, K, "raw");
    for (int64_t r = 0; r < rows; ++r) dequantize_row(m.type, m.data + r * m.row_bytes, out + r * K, K);
  })
}

int rf_matmul(int32_t type, const void* raw, int64_t N, int64_t K, const float* x, int64_t T, float* y,
              int64_t threads, char* err, int64_t errlen) {
  GUARD({
    Matrix m = make_matrix(Raw{raw, type, N, K}, K, "raw");
    Pool pool(static_cast<int>(std::max<int64_t>(1, threads)));
    Act act;
    matmul(&pool, {{&m, y, N}}, x, T, K, act);
  })
}

int rf_quantized_activation(const float* x, int64_t K, int32_t k_quant, float* out, char* err, int64_t errlen) {
  GUARD({
    CHECK(K % (k_quant ? QKK : QK) == 0, "K must be a multiple of the block size");
    Act a;
    quantize_act(x, 1, K, !k_quant, k_quant != 0, a);
    for (int64_t i = 0; i < K; ++i)
      out[i] = k_quant ? static_cast<float>(a.qk[i]) * a.dk[i / QKK] : static_cast<float>(a.q0[i]) * a.d0[i / QK];
  })
}

// GELU (tanh form) of x in place, as the feed-forward computes it before the product with `up`
void rf_gelu(float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, v_gelu(_mm256_loadu_ps(x + i)));
  for (; i < n; ++i) x[i] = gelu_one(x[i]);
}

// softmax of x in place, as attention computes its weights (the vectorised exp, the sum, one reciprocal)
void rf_softmax(float* x, int64_t n) {
  float m = -INFINITY;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  const float inv_sum = 1.f / exp_sub_sum(x, n, m);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv_sum;
}

}  // extern "C"
