// C++ CPU kernel of zerofwht::init_fill_ (torch-free; contract in init_fill.h / shared/init_params.h).
// Only integer moves: the glue hands over the bit patterns of +value and -value, so one
// instantiation per element size (2, 4, 8 bytes) serves every floating dtype. Plain loops and
// memset / fixed-size copies, which the compiler vectorizes for the build's baseline target; the
// kernel is bound by memory bandwidth, not by instructions.
#include "cpu/init_fill.h"

#include <algorithm>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>  // _mm_stream_si128 / _mm_sfence (baseline on x86-64)
#define ZF_HAVE_STREAM 1
#else
#define ZF_HAVE_STREAM 0
#endif

namespace zerofwht {
namespace init {
namespace cpu {
namespace {

constexpr int64_t kBlock = 64;          // Hadamard pattern block (columns)
constexpr int64_t kChunk = int64_t(1) << 16;  // longest piece of a run (elements), multiple of kBlock
// Tensors larger than this are written with non-temporal (streaming) stores on the contiguous
// row paths: no read-for-ownership of lines that are overwritten anyway, and the weight does not
// evict the caches (it is far larger than them). Smaller tensors are written normally: they may
// sit in a large last-level cache, where plain stores were faster here (2048x2048 fp32: 22 GB/s
// streamed vs 40 GB/s for fill_), and the same threshold is used by the FWHT kernel.
constexpr int64_t kStreamBytes = int64_t(32) << 20;

// A contiguous run of n zeros except dst[jp] = pos and dst[jm] = neg (indices outside [0, n)
// mean none; jm is written last). With `stream`, every 64-byte line without a non-zero is written
// with non-temporal stores, the others with plain stores.
template <class U>
void sparse_run(U* dst, int64_t n, int64_t jp, U pos, int64_t jm, U neg, bool stream) {
#if ZF_HAVE_STREAM
  if (stream) {
    constexpr int64_t L = 64 / sizeof(U);  // elements per line
    const uintptr_t a = reinterpret_cast<uintptr_t>(dst);
    int64_t j = std::min<int64_t>(n, static_cast<int64_t>(((64 - a % 64) % 64) / sizeof(U)));
    for (int64_t t = 0; t < j; ++t) dst[t] = 0;
    const __m128i z = _mm_setzero_si128();
    for (; j + L <= n; j += L) {
      if ((jp >= j && jp < j + L) || (jm >= j && jm < j + L)) {
        for (int64_t t = 0; t < L; ++t) dst[j + t] = 0;
      } else {
        __m128i* d = reinterpret_cast<__m128i*>(dst + j);
        _mm_stream_si128(d, z);
        _mm_stream_si128(d + 1, z);
        _mm_stream_si128(d + 2, z);
        _mm_stream_si128(d + 3, z);
      }
    }
    for (; j < n; ++j) dst[j] = 0;
  } else {
    std::memset(dst, 0, sizeof(U) * static_cast<size_t>(n));
  }
#else
  (void)stream;
  std::memset(dst, 0, sizeof(U) * static_cast<size_t>(n));
#endif
  if (jp >= 0 && jp < n) dst[jp] = pos;
  if (jm >= 0 && jm < n) dst[jm] = neg;
}

template <class U>
inline void zero_run(U* dst, int64_t stride, int64_t n, bool stream = false) {
  if (stride == 1) {
    sparse_run<U>(dst, n, -1, 0, -1, 0, stream);
  } else {
    for (int64_t j = 0; j < n; ++j) dst[j * stride] = 0;
  }
}

template <class U>
inline void copy_block(U* __restrict dst, const U* __restrict src, bool stream) {  // kBlock elements
#if ZF_HAVE_STREAM
  if (stream && (reinterpret_cast<uintptr_t>(dst) & 15) == 0) {
    constexpr int kVecs = static_cast<int>(sizeof(U) * kBlock / 16);
    const __m128i* s = reinterpret_cast<const __m128i*>(src);  // src: 64-byte aligned pattern
    __m128i* d = reinterpret_cast<__m128i*>(dst);
    for (int k = 0; k < kVecs; ++k) _mm_stream_si128(d + k, _mm_load_si128(s + k));
    return;
  }
#else
  (void)stream;
#endif
  std::memcpy(dst, src, sizeof(U) * kBlock);
}

// dst[j] = H[fixed, v0 + j] (as bits) for j < n, dst contiguous. H symmetric: `fixed` is the row
// when the run goes along a row, the column when it goes down a column.
template <class U>
void hadamard_run(U* __restrict dst, int64_t fixed, int64_t v0, int64_t n, U pos, U neg, bool stream) {
  alignas(64) U pat[2][kBlock];
  for (int64_t k = 0; k < kBlock; ++k) {
    const bool odd = parity64(static_cast<uint64_t>(fixed & k));
    pat[0][k] = odd ? neg : pos;
    pat[1][k] = odd ? pos : neg;
  }
  int64_t j = 0, v = v0;
  // head: up to the next multiple of kBlock
  if (v & (kBlock - 1)) {
    const int64_t k0 = v & (kBlock - 1);
    const int64_t m = std::min(kBlock - k0, n);
    const U* src = pat[parity64(static_cast<uint64_t>(fixed & (v & ~(kBlock - 1))))] + k0;
    for (int64_t t = 0; t < m; ++t) dst[t] = src[t];
    j += m;
    v += m;
  }
  for (; j + kBlock <= n; j += kBlock, v += kBlock)
    copy_block(dst + j, pat[parity64(static_cast<uint64_t>(fixed & v))], stream);
  if (j < n) {
    const U* src = pat[parity64(static_cast<uint64_t>(fixed & v))];
    for (int64_t t = 0; j + t < n; ++t) dst[j + t] = src[t];
  }
}

// First index j >= 0 with (v0 + j) == a (mod period), or -1 when period is 0 and v0 + j == a has
// no solution j >= 0. period 0 means "exactly a".
inline int64_t first_hit(int64_t v0, int64_t a, int64_t period) {
  if (period == 0) return a >= v0 ? a - v0 : -1;
  int64_t r = (a - v0) % period;
  return r < 0 ? r + period : r;
}

template <class U>
inline void poke(U* dst, int64_t stride, int64_t n, int64_t j, int64_t period, U value) {
  if (j < 0) return;
  if (period == 0) {
    if (j < n) dst[j * stride] = value;
    return;
  }
  for (; j < n; j += period) dst[j * stride] = value;
}

// Elements [j0, j1) of the run that starts at `s`.
template <class U>
void fill_segment(const InitParams& p, const RunStart& s, int64_t j0, int64_t j1, bool stream) {
  const int L = p.ndim - 1;
  const int64_t st = p.strides[L], ri = p.row_coef[L], ci = p.col_coef[L], ti = p.tap_coef[L];
  const int64_t n = j1 - j0;
  const int64_t row = s.row + j0 * ri, col = s.col + j0 * ci, tap = s.tap + j0 * ti;
  U* dst = static_cast<U*>(p.w) + s.mem + j0 * st;
  const U pos = static_cast<U>(p.pos_bits), neg = static_cast<U>(p.neg_bits);

  if (ti != 0) {  // the run crosses kernel taps: at most one element is on the centre tap
    zero_run(dst, st, n);
    const int64_t d = p.tap_centre - tap;
    if (p.kind != Kind::kZeros && d % ti == 0 && d / ti >= 0 && d / ti < n) {
      const int64_t j = d / ti;
      dst[j * st] = static_cast<U>(element_bits(p, row + j * ri, col + j * ci, p.tap_centre));
    }
    return;
  }
  if (tap != p.tap_centre || p.kind == Kind::kZeros) {
    zero_run(dst, st, n, stream);
    return;
  }
  const bool along_row = ri == 0 && ci == 1, along_col = ri == 1 && ci == 0;
  if (p.kind == Kind::kHadamard) {
    if (st == 1 && along_row) return hadamard_run(dst, row, col, n, pos, neg, stream);
    if (st == 1 && along_col) return hadamard_run(dst, col, row, n, pos, neg, stream);
    for (int64_t j = 0; j < n; ++j)
      dst[j * st] = parity64(static_cast<uint64_t>((row + j * ri) & (col + j * ci))) ? neg : pos;
    return;
  }
  if (along_row) {  // one logical row: zeros and its <= 2 non-zeros (minus last: it wins)
    int64_t plus, minus;
    row_nonzeros(p, row, &plus, &minus);
    const int64_t jp = plus >= col && plus < col + n ? plus - col : -1;
    const int64_t jm = minus >= col && minus < col + n ? minus - col : -1;
    if (st == 1) return sparse_run(dst, n, jp, pos, jm, neg, stream);
    zero_run(dst, st, n);
    if (jp >= 0) dst[jp * st] = pos;
    if (jm >= 0) dst[jm * st] = neg;
    return;
  }
  if (along_col) {  // one logical column c: the rows holding a non-zero there are periodic
    zero_run(dst, st, n);
    const int64_t R = p.full_rows, C = p.full_cols, c = col;
    switch (p.kind) {
      case Kind::kPartialIdentity: poke(dst, st, n, first_hit(row, c, 0), 0, pos); break;
      case Kind::kIdi: poke(dst, st, n, first_hit(row, c, C), C, pos); break;
      case Kind::kIdiz:
        poke(dst, st, n, first_hit(row, c, C), C, pos);
        if (R < C) {
          if (c >= R) poke(dst, st, n, first_hit(row, c - R, C - R), C - R, neg);
        } else {
          poke(dst, st, n, first_hit(row, (c + C - 1) % C, C), C, neg);
        }
        break;
      default: break;
    }
    return;
  }
  for (int64_t j = 0; j < n; ++j)  // any other run: element by element
    dst[j * st] = static_cast<U>(element_bits(p, row + j * ri, col + j * ci, tap));
}

template <class U>
void fill_typed(const InitParams& p, const FillPlan& plan, int64_t b, int64_t e) {
  if (b >= e) return;
  if (plan.chunks_per_run == 1) {
    // Whole runs: walk the outer indices with an odometer (no division per run).
    const int outer = p.ndim - 1;
    int64_t idx[kMaxDims] = {0};
    int64_t r = b;
    for (int k = outer - 1; k >= 0; --k) {
      idx[k] = r % p.sizes[k];
      r /= p.sizes[k];
    }
    RunStart s = run_start(p, b);
    for (int64_t run = b; run < e; ++run) {
      fill_segment<U>(p, s, 0, plan.run_len, plan.stream);
      for (int k = outer - 1; k >= 0; --k) {  // advance to the next run
        s.mem += p.strides[k];
        s.row += p.row_coef[k];
        s.col += p.col_coef[k];
        s.tap += p.tap_coef[k];
        if (++idx[k] < p.sizes[k]) break;
        s.mem -= p.strides[k] * p.sizes[k];
        s.row -= p.row_coef[k] * p.sizes[k];
        s.col -= p.col_coef[k] * p.sizes[k];
        s.tap -= p.tap_coef[k] * p.sizes[k];
        idx[k] = 0;
      }
    }
    return;
  }
  for (int64_t piece = b; piece < e; ++piece) {
    const int64_t run = piece / plan.chunks_per_run, c = piece % plan.chunks_per_run;
    const int64_t j0 = c * plan.chunk, j1 = std::min(plan.run_len, j0 + plan.chunk);
    fill_segment<U>(p, run_start(p, run), j0, j1, plan.stream);
  }
}

}  // namespace

FillPlan make_plan(const InitParams& p) {
  FillPlan f;
  f.runs = num_runs(p);
  f.run_len = run_length(p);
  f.chunk = f.run_len > kChunk ? kChunk : f.run_len;
  f.chunks_per_run = (f.run_len + f.chunk - 1) / f.chunk;
  f.pieces = f.runs * f.chunks_per_run;
  f.grain = std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(f.chunk, 1));
  f.stream = p.numel * p.elem_bytes > kStreamBytes;
  return f;
}

void fill_pieces(const InitParams& p, const FillPlan& plan, int64_t b, int64_t e) {
  switch (p.elem_bytes) {
    case 2: fill_typed<uint16_t>(p, plan, b, e); break;
    case 4: fill_typed<uint32_t>(p, plan, b, e); break;
    case 8: fill_typed<uint64_t>(p, plan, b, e); break;
    default: break;  // the glue only passes 2, 4 or 8
  }
#if ZF_HAVE_STREAM
  if (plan.stream) _mm_sfence();  // streaming stores visible before this piece is reported done
#endif
}

}  // namespace cpu
}  // namespace init
}  // namespace zerofwht
