// Body of the C++ CPU Walsh-Hadamard kernels, written once with GCC/Clang vector extensions and
// compiled once per instruction set. Not a normal header: each fwht_cpu_<isa>.cpp includes the
// standard headers, switches the target with `#pragma GCC target`, defines
//   ZF_ISA_NS      namespace of this variant (avx512 / avx2 / generic)
//   ZF_ISA_NAME    its name as a string
//   ZF_VEC_BYTES   vector register width in bytes (64 / 32 / 16)
//   ZF_RADIX_LOG2  log2 of how many vectors one pass keeps in registers (4 with 32 registers,
//                  3 with 16)
//   ZF_STREAM_F32(p, v), ZF_STREAM_F64(p, v), ZF_SFENCE()  (optional) non-temporal store of one
//                  aligned vector, and the fence that orders such stores
//   ZF_F16_LOAD(p), ZF_F16_STORE(p, v)  (optional) one vector of fp16 converted to / from fp32
//                  with the ISA's whole-register conversions (round to nearest even)
// and then includes this file. No torch here (see fwht_cpu.h for the contract).
//
// Algorithm, for one row of length n = 2^m and W = ZF_VEC_BYTES / sizeof(compute type) lanes:
//   * leaf pass: for each chunk of R = 2^ZF_RADIX_LOG2 vectors, load (converting, zero-padding
//     past d_in), do the log2(W) in-register stages with lane shuffles, then log2(R) stages
//     across the R registers, store;
//   * radix passes: each takes up to log2(R) further stages at once: R vectors at stride h are
//     loaded, combined in registers and stored back;
//   * the last pass multiplies by the scale and stores (converting, dropping columns >= d_out).
// Stages are always applied in increasing distance, and every butterfly is (lo + hi, lo - hi),
// so every instruction set and every way of cutting the work gives bitwise identical results.
// Rows longer than a block (which should stay in L2) are done in two sweeps over memory: the
// stages inside each block, then the stages across blocks, one column group at a time.

#ifndef ZF_ISA_NS
#error "define ZF_ISA_NS, ZF_ISA_NAME, ZF_VEC_BYTES and ZF_RADIX_LOG2 before including fwht_cpu_impl.h"
#endif

// Everything on the hot path is forced inline: the R vectors of a chunk must live in registers,
// and an out-of-line call would send them through the stack.
#ifndef ZF_INLINE
#define ZF_INLINE inline __attribute__((always_inline))
#endif
#ifndef ZF_INLINE_LAMBDA
#define ZF_INLINE_LAMBDA __attribute__((always_inline))
#endif

namespace zerofwht {
namespace cpu {
namespace ZF_ISA_NS {
namespace {

typedef float vf __attribute__((vector_size(ZF_VEC_BYTES)));
typedef double vd __attribute__((vector_size(ZF_VEC_BYTES)));
typedef uint32_t vu32 __attribute__((vector_size(ZF_VEC_BYTES)));
typedef _Float16 vh __attribute__((vector_size(ZF_VEC_BYTES / 2)));  // as many lanes as vf
typedef uint16_t vu16 __attribute__((vector_size(ZF_VEC_BYTES / 2)));

struct F16 { uint16_t bits; };   // IEEE binary16, as c10::Half stores it
struct BF16 { uint16_t bits; };  // bfloat16, as c10::BFloat16 stores it

// Unaligned vector load / store through a vector type of alignment 1 (not memcpy: a char-typed
// copy may alias anything, which makes the compiler reload every pointer after each store).
template <class V>
struct Unaligned {
  typedef V type __attribute__((aligned(1)));
};
template <class V, class P>
ZF_INLINE V loadu(const P* p) {
  return *reinterpret_cast<const typename Unaligned<V>::type*>(p);
}
template <class V, class P>
ZF_INLINE void storeu(P* p, const V& v) {
  *reinterpret_cast<typename Unaligned<V>::type*>(p) = v;
}

// ---- storage types: how a vector of W elements is loaded / stored in the compute type ----------
template <class T> struct Storage;
inline bool vector_aligned(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & (ZF_VEC_BYTES - 1)) == 0;
}

// stream(): a non-temporal store where the ISA has one and p is aligned, else a plain store.
template <> struct Storage<float> {
  using C = float;
  using V = vf;
  static ZF_INLINE V load(const float* p) { return loadu<V>(p); }
  static ZF_INLINE void store(float* p, V v) { storeu(p, v); }
  static ZF_INLINE void stream(float* p, V v) {
#ifdef ZF_STREAM_F32
    if (vector_aligned(p)) { ZF_STREAM_F32(p, v); return; }
#endif
    storeu(p, v);
  }
};
template <> struct Storage<double> {
  using C = double;
  using V = vd;
  static ZF_INLINE V load(const double* p) { return loadu<V>(p); }
  static ZF_INLINE void store(double* p, V v) { storeu(p, v); }
  static ZF_INLINE void stream(double* p, V v) {
#ifdef ZF_STREAM_F64
    if (vector_aligned(p)) { ZF_STREAM_F64(p, v); return; }
#endif
    storeu(p, v);
  }
};
// fp16 <-> fp32 through the ISA's whole-register conversions where it names them (ZF_F16_LOAD /
// ZF_F16_STORE): GCC lowers __builtin_convertvector of a 16-lane _Float16 vector to 4-lane xmm
// conversions and shuffles, which left fp16 transforms 2.3-3.3x slower than bf16 (Zen 4, one
// thread, 2^22 elements per call, n = 2^8: 1.05 against 0.34 ns per element). Both round to
// nearest even, like c10::Half, and give the same bits.
template <> struct Storage<F16> {
  using C = float;
  using V = vf;
  static ZF_INLINE V load(const F16* p) {
#ifdef ZF_F16_LOAD
    return (V)ZF_F16_LOAD(p);
#else
    return __builtin_convertvector(loadu<vh>(p), vf);
#endif
  }
  // Conversion in the current rounding mode: round to nearest even, like c10::Half.
  static ZF_INLINE void store(F16* p, V v) {
#ifdef ZF_F16_STORE
    ZF_F16_STORE(p, v);
#else
    storeu(p, __builtin_convertvector(v, vh));
#endif
  }
  static ZF_INLINE void stream(F16* p, V v) { store(p, v); }
};
template <> struct Storage<BF16> {
  using C = float;
  using V = vf;
  static ZF_INLINE V load(const BF16* p) {
    vu32 w = __builtin_convertvector(loadu<vu16>(p), vu32) << 16;
    return (vf)w;
  }
  // Round to nearest even, NaN -> 0x7fc0: exactly c10::BFloat16's round_to_nearest_even.
  static ZF_INLINE void store(BF16* p, V v) {
    vu32 b = (vu32)v;
    vu32 rounded = (b + ((b >> 16) & 1u) + 0x7fffu) >> 16;
    vu32 nan = (vu32)(v != v);  // all ones in NaN lanes
    vu32 r = (rounded & ~nan) | (nan & 0x7fc0u);
    storeu(p, __builtin_convertvector(r, vu16));
  }
  static ZF_INLINE void stream(BF16* p, V v) { store(p, v); }
};

// ---- prefetching the next row while this one computes ---------------------------------------
// The passes after the leaf work in L1/L2 and leave memory idle; meanwhile the next row's input
// lines are fetched and its output lines claimed for writing (prefetchw: no read-for-ownership
// stall later), one input and one output line per two vectors each radix chunk loads. Measured on
// an AMD EPYC (Zen 4), one thread, fp32, 2^22 elements per call, n = 2^12 ... 2^15: 0.378-0.48
// -> 0.359-0.437 ns per element with two lines per chunk; with one per two vectors (which covers
// a whole next row of 2^12 during the current row's two radix passes) 2^12 0.33 -> 0.27-0.28,
// 2^13 0.36 -> 0.34, other sizes unchanged within the noise.
// Per thread: set by the row loops (run_rows, run_blocks), consumed by radix_pass.
struct NextRowPrefetch {
  const char* read = nullptr;  // next line of the next input to fetch
  int64_t read_lines = 0;      // lines of it still to fetch
  char* write = nullptr;       // next line of the next output to claim
  int64_t write_lines = 0;     // lines of it still to claim (0 when the output streams)
};
inline thread_local NextRowPrefetch t_prefetch;
template <int Rv>
constexpr int kPrefetchLinesPerChunk = Rv >= 4 ? Rv / 2 : 1;

// ---- register-level butterflies ------------------------------------------------------------
template <class C> struct Lanes;
template <> struct Lanes<float> { using V = vf; static constexpr int W = ZF_VEC_BYTES / 4; };
template <> struct Lanes<double> { using V = vd; static constexpr int W = ZF_VEC_BYTES / 8; };

template <class C>
struct Kern {
  using V = typename Lanes<C>::V;
  static constexpr int W = Lanes<C>::W;
  static constexpr int LW = __builtin_ctz(W);
  static constexpr int LR = ZF_RADIX_LOG2;
  static constexpr int kWideCap = 3;

  template <int D, size_t... I>
  static ZF_INLINE V partner(V v, std::index_sequence<I...>) {  // lane i <- lane i ^ D
    return __builtin_shufflevector(v, v, static_cast<int>(I ^ D)...);
  }
  template <int D, size_t... I>
  static ZF_INLINE V signs(std::index_sequence<I...>) {  // +1 on lower lanes, -1 on upper lanes
    return V{((I & D) ? C(-1) : C(1))...};
  }
  // One in-register stage of distance D: lower lane lo + hi, upper lane lo - hi. Written as
  // partner + v * (+-1); v * (+-1) is exact, so the compiler may fuse it into one FMA (it does
  // with -ffp-contract=fast, the GCC default) without changing a single bit of the result.
  template <int D>
  static ZF_INLINE V lane_stage(V v) {
    using Seq = std::make_index_sequence<W>;
    return partner<D>(v, Seq{}) + v * signs<D>(Seq{});
  }
  template <int D = 1>
  static ZF_INLINE V lane_stages(V v) {  // all stages of distance < W
    if constexpr (D < W) return lane_stages<2 * D>(lane_stage<D>(v));
    else return v;
  }
  template <int D = 1>
  static ZF_INLINE V lane_stages_below(V v, int64_t n) {  // stages of distance < n (< W)
    if constexpr (D < W) {
      if (D >= n) return v;
      return lane_stages_below<2 * D>(lane_stage<D>(v), n);
    } else {
      return v;
    }
  }
  template <int Rv, int H = 1>
  static ZF_INLINE void across(V* a) {  // stages across Rv registers (distance H .. Rv/2 registers)
    if constexpr (H < Rv) {
#pragma GCC unroll 32
      for (int i = 0; i < Rv; ++i) {
        if (!(i & H)) {
          V lo = a[i], hi = a[i + H];
          a[i] = lo + hi;
          a[i + H] = lo - hi;
        }
      }
      across<Rv, 2 * H>(a);
    }
  }

  // ---- passes over a logical row ------------------------------------------------------------
  // A loader has get<kCheck>(i) (lanes [i, i+W)) and full(lo, hi) (true when every position in
  // [lo, hi) is inside the data, so get<false> may skip the bounds checks); a storer has
  // put<kCheck>(i, v) and full(lo, hi) likewise. Each chunk is checked once, not each vector.
  template <int Rv, bool kCheck, class Ld, class St>
  static ZF_INLINE void leaf_chunk(int64_t base, int64_t lane_limit, const Ld& ld, const St& st) {
    V a[Rv];
    if (lane_limit >= W) {
#pragma GCC unroll 16
      for (int k = 0; k < Rv; ++k) a[k] = lane_stages(ld.template get<kCheck>(base + k * W));
    } else {  // rows shorter than a vector, packed side by side: only distances < lane_limit
#pragma GCC unroll 16
      for (int k = 0; k < Rv; ++k)
        a[k] = lane_stages_below(ld.template get<kCheck>(base + k * W), lane_limit);
    }
    across<Rv>(a);
#pragma GCC unroll 16
    for (int k = 0; k < Rv; ++k) st.template put<kCheck>(base + k * W, a[k]);
  }
  template <int Rv, class Ld, class St>
  static void leaf_pass(int64_t len, int64_t lane_limit, const Ld& ld_ref, const St& st_ref) {
    const Ld ld = ld_ref;  // local copies: their fields cannot alias the data being written
    const St st = st_ref;
    for (int64_t base = 0; base < len; base += Rv * W) {
      const int64_t end = base + Rv * W;
      if (ld.full(base, end) && st.full(base, end)) leaf_chunk<Rv, false>(base, lane_limit, ld, st);
      else leaf_chunk<Rv, true>(base, lane_limit, ld, st);
    }
  }
  template <int Rv, bool kCheck, class Ld, class St>
  static ZF_INLINE void radix_chunk(int64_t j, int64_t h, const Ld& ld, const St& st) {
    V a[Rv];
#pragma GCC unroll 16
    for (int k = 0; k < Rv; ++k) a[k] = ld.template get<kCheck>(j + k * h);
    across<Rv>(a);
#pragma GCC unroll 16
    for (int k = 0; k < Rv; ++k) st.template put<kCheck>(j + k * h, a[k]);
  }
  template <int Rv, class Ld, class St>
  static void radix_pass(int64_t len, int64_t h, const Ld& ld_ref, const St& st_ref) {
    const Ld ld = ld_ref;
    const St st = st_ref;
    NextRowPrefetch pf = t_prefetch;
    auto prefetch = [&pf]() ZF_INLINE_LAMBDA {
      for (int i = 0; i < kPrefetchLinesPerChunk<Rv>; ++i) {
        if (pf.read_lines > 0) {
          __builtin_prefetch(pf.read, 0, 2);
          --pf.read_lines;
          if (pf.read_lines > 0) pf.read += 64;
        }
        if (pf.write_lines > 0) {
          __builtin_prefetch(pf.write, 1, 2);
          --pf.write_lines;
          if (pf.write_lines > 0) pf.write += 64;
        }
      }
    };
    for (int64_t base = 0; base < len; base += h * Rv) {
      const int64_t end = base + h * Rv;
      if (ld.full(base, end) && st.full(base, end)) {
        for (int64_t j = base; j < base + h; j += W) {
          prefetch();
          radix_chunk<Rv, false>(j, h, ld, st);
        }
      } else {
        // Part of this group is padding or truncated (a row with d_out < n): decide per chunk, so
        // that only the chunks that reach past the end pay for the checks, and keep prefetching.
        // (Checking the whole group cost the last pass of every truncated row its next-row
        // prefetch and ran it fully checked: 2x slower at n = 2^10 with d_out = n - 16.)
        for (int64_t j = base; j < base + h; j += W) {
          prefetch();
          const int64_t chunk_end = j + (Rv - 1) * h + W;
          if (ld.full(j, chunk_end) && st.full(j, chunk_end)) radix_chunk<Rv, false>(j, h, ld, st);
          else radix_chunk<Rv, true>(j, h, ld, st);
        }
      }
    }
    t_prefetch = pf;
  }
  template <class Ld, class St>
  static void leaf_pass_r(int lr, int64_t len, int64_t lane_limit, const Ld& ld, const St& st) {
    switch (lr) {
      case 0: return leaf_pass<1>(len, lane_limit, ld, st);
      case 1: return leaf_pass<2>(len, lane_limit, ld, st);
      case 2: return leaf_pass<4>(len, lane_limit, ld, st);
      case 3: return leaf_pass<8>(len, lane_limit, ld, st);
#if ZF_RADIX_LOG2 >= 4
      case 4: return leaf_pass<16>(len, lane_limit, ld, st);
#endif
    }
  }
  template <class Ld, class St>
  static void radix_pass_r(int lr, int64_t len, int64_t h, const Ld& ld, const St& st) {
    switch (lr) {
      case 1: return radix_pass<2>(len, h, ld, st);
      case 2: return radix_pass<4>(len, h, ld, st);
      case 3: return radix_pass<8>(len, h, ld, st);
#if ZF_RADIX_LOG2 >= 4
      case 4: return radix_pass<16>(len, h, ld, st);
#endif
    }
  }

  // A work buffer in the compute type, addressed like the logical row.
  struct WorkIO {
    C* w;
    template <bool kCheck> ZF_INLINE V get(int64_t i) const { return loadu<V>(w + i); }
    template <bool kCheck> ZF_INLINE void put(int64_t i, V v) const { storeu(w + i, v); }
    bool full(int64_t, int64_t) const { return true; }
  };

  // Applies the stages of distance h0, 2*h0, ..., h_end/2 to `len` elements (powers of two,
  // h0 == 1 or h0 >= W, h_end <= len; with h_end < len, that is len/h_end independent rows of
  // h_end elements laid side by side), reading with `ld`, writing the result with `st`.
  // Intermediate passes go through `work` (len elements; may be st's own memory).
  // The leaf pass keeps at most 2^leaf_max vectors (leaf_max <= LR).
  template <class Ld, class St>
  static void stages(int64_t len, int64_t h0, int64_t h_end, const Ld& ld, const St& st, C* work,
                     int leaf_max = LR) {
    const int lg_end = __builtin_ctzll(h_end);
    int done = __builtin_ctzll(h0);
    int leaf_lr = -1;
    if (done == 0) {  // the leaf pass takes the in-register stages and up to leaf_max more
      // The leaf keeps to leaf_max even when one pass of LR could take the whole row (the plan
      // raises leaf_max where that pays). With plain stores to lines that miss, one pass of 16
      // vectors bursts 16 loads and 16 stores, which was slower on Zen 4: two threads, 2^22
      // elements per call, n = 2^8, peer_bench, eight alternating rounds: 0.201 -> 0.143 ns per
      // element; benchmarks/probes/burst_width.c: bursts of 16 lines 20-25 % slower than bursts of
      // 8, up to 2.3x.
      leaf_max = std::min(leaf_max, LR);
      leaf_lr = lg_end <= LW ? 0 : (lg_end - LW < leaf_max ? lg_end - LW : leaf_max);
      done = lg_end <= LW ? lg_end : LW + leaf_lr;
    }
    const int rest = lg_end - done;
    // Strides of 4 KB or more put every one of a pass's 2^lr streams in the same L1 set (12 ways
    // here): such passes take at most 3 bits.
    const int cap = (int64_t(1) << done) * int64_t(sizeof(C)) >= 4096 ? std::min(LR, kWideCap) : LR;
    const int radix_passes = (rest + cap - 1) / cap;
    const int passes = radix_passes + (leaf_lr >= 0 ? 1 : 0);
    WorkIO wk{work};
    int pass = 0;
    auto run = [&](const auto& src, const auto& dst, int lr, int64_t h) {
      if (h == 0) leaf_pass_r(lr, len, h_end, src, dst);
      else radix_pass_r(lr, len, h, src, dst);
    };
    // the first pass reads ld, the last writes st, the others use the work buffer
    auto step = [&](int lr, int64_t h) {
      const bool first = pass == 0, last = pass == passes - 1;
      if (first && last) run(ld, st, lr, h);
      else if (first) run(ld, wk, lr, h);
      else if (last) run(wk, st, lr, h);
      else run(wk, wk, lr, h);
      ++pass;
    };
    if (leaf_lr >= 0) step(leaf_lr, 0);
    int64_t h = int64_t(1) << done;
    for (int k = 0; k < radix_passes; ++k) {
      // spread the remaining stages evenly over the passes (fewer live registers than R)
      const int lr = rest / radix_passes + (k < rest % radix_passes ? 1 : 0);
      step(lr, h);
      h <<= lr;
    }
  }
};

// ---- the row I/O: conversion, implicit zero padding, truncation, scale -------------------------
template <class T>
struct RowLoad {  // reads lanes [pos, pos + W) of a row holding `valid` elements, zero beyond
  using S = Storage<T>;
  using V = typename S::V;
  static constexpr int W = Lanes<typename S::C>::W;
  const T* x;
  int64_t valid;
  bool full(int64_t, int64_t hi) const { return hi <= valid; }
  template <bool kCheck>
  ZF_INLINE V get(int64_t pos) const {
    if (!kCheck || pos + W <= valid) return S::load(x + pos);
    if (pos >= valid) return V{};
    T tmp[W];
    std::memset(static_cast<void*>(tmp), 0, sizeof(tmp));
    std::memcpy(static_cast<void*>(tmp), x + pos, sizeof(T) * size_t(valid - pos));
    return S::load(tmp);
  }
};

template <class T>
struct RowStore {  // writes lanes [pos, pos + W) times scale, dropping positions >= limit
  using S = Storage<T>;
  using C = typename S::C;
  using V = typename S::V;
  static constexpr int W = Lanes<C>::W;
  T* y;
  int64_t limit;
  C scale;
  bool scaled;  // scale != 1 (multiplying by 1 is exact, but costs an instruction per vector)
  bool stream;  // non-temporal stores (see FwhtPlan::stream)
  bool full(int64_t, int64_t hi) const { return hi <= limit; }
  template <bool kCheck>
  ZF_INLINE void put(int64_t pos, V v) const {
    if (scaled) v = v * scale;
    if (!kCheck || pos + W <= limit) {
      if (stream) S::stream(y + pos, v);
      else S::store(y + pos, v);
    } else if (pos < limit) {
      T tmp[W];
      S::store(tmp, v);
      std::memcpy(static_cast<void*>(y + pos), tmp, sizeof(T) * size_t(limit - pos));
    }
  }
};

// Rows of n >= W elements, evenly strided, seen as one array of rows * n positions laid side by
// side (position i: row i >> lg_n, column i & (n - 1)); each vector lies inside one row. Lets short
// rows with padding (d_in < n), truncation (d_out < n) or gaps between rows be done a chunk of rows
// per call, like whole dense rows (Impl::packed), instead of one row at a time.
template <class T>
struct RowsLoad {
  const T* x;
  int64_t stride;  // elements from one row's start to the next
  int64_t valid;   // elements read per row (d_in); zero beyond
  int lg_n;
  ZF_INLINE RowLoad<T> row(int64_t pos) const { return RowLoad<T>{x + (pos >> lg_n) * stride, valid}; }
  // [lo, hi) inside one row and inside its data
  bool full(int64_t lo, int64_t hi) const {
    return (lo >> lg_n) == ((hi - 1) >> lg_n) && ((hi - 1) & ((int64_t(1) << lg_n) - 1)) < valid;
  }
  template <bool kCheck>
  ZF_INLINE auto get(int64_t pos) const {
    return row(pos).template get<kCheck>(pos & ((int64_t(1) << lg_n) - 1));
  }
};
template <class T>
struct RowsStore {
  using C = typename Storage<T>::C;
  T* y;
  int64_t stride;  // elements from one row's start to the next
  int64_t limit;   // elements written per row (d_out); positions beyond are dropped
  int lg_n;
  C scale;
  bool scaled, stream;
  ZF_INLINE RowStore<T> row(int64_t pos) const {
    return RowStore<T>{y + (pos >> lg_n) * stride, limit, scale, scaled, stream};
  }
  bool full(int64_t lo, int64_t hi) const {
    return (lo >> lg_n) == ((hi - 1) >> lg_n) && ((hi - 1) & ((int64_t(1) << lg_n) - 1)) < limit;
  }
  template <bool kCheck, class V>
  ZF_INLINE void put(int64_t pos, V v) const {
    row(pos).template put<kCheck>(pos & ((int64_t(1) << lg_n) - 1), v);
  }
};

// Column-group addressing for the stages across blocks: index i of the gathered group
// (row r = i / group, column c = i % group) is position r * block + c of the row, relative to
// the group's first column.
struct GroupMap {
  int lg_group, lg_block;
  ZF_INLINE int64_t operator()(int64_t i) const {
    return ((i >> lg_group) << lg_block) + (i & ((int64_t(1) << lg_group) - 1));
  }
};
template <class IO>
struct MappedLoad {
  IO io;
  GroupMap map;
  bool full(int64_t lo, int64_t hi) const { return io.full(map(lo), map(hi - 1) + 1); }
  template <bool kCheck>
  ZF_INLINE auto get(int64_t i) const { return io.template get<kCheck>(map(i)); }
};
template <class IO>
struct MappedStore {
  IO io;
  GroupMap map;
  bool full(int64_t lo, int64_t hi) const { return io.full(map(lo), map(hi - 1) + 1); }
  template <bool kCheck, class V>
  ZF_INLINE void put(int64_t i, V v) const { io.template put<kCheck>(map(i), v); }
};

template <class T>
inline int64_t lines_of(int64_t elems) {  // 64-byte lines spanned by elems elements from a line start
  return (elems * int64_t(sizeof(T)) + 63) / 64;
}

inline int64_t row_offset(const RowLayout& l, int64_t r) {
  if (l.ndim == 1) return r * l.strides[0];
  int64_t off = 0;
  for (int k = l.ndim - 1; k >= 0; --k) {
    const int64_t i = r % l.sizes[k];
    r /= l.sizes[k];
    off += i * l.strides[k];
  }
  return off;
}

// Per-thread scratch that survives between calls (a fresh allocation of a large buffer would be
// page-faulted in again every time). Slot 0: rows and blocks; slot 1: column groups.
inline void* thread_scratch(int slot, size_t bytes) {
  struct Buffer {
    void* p = nullptr;
    size_t size = 0;
    ~Buffer() {
      if (p) ::operator delete(p, std::align_val_t(64));
    }
  };
  thread_local Buffer buffers[2];
  Buffer& b = buffers[slot];
  if (b.size < bytes) {
    if (b.p) ::operator delete(b.p, std::align_val_t(64));
    b.p = ::operator new(bytes, std::align_val_t(64));
    b.size = bytes;
  }
  return b.p;
}

template <class C>
struct AlignedBuffer {  // scratch in the compute type; 64-byte aligned
  C* p = nullptr;
  explicit AlignedBuffer(int64_t n) {
    if (n > 0) p = static_cast<C*>(::operator new(sizeof(C) * size_t(n), std::align_val_t(64)));
  }
  ~AlignedBuffer() {
    if (p) ::operator delete(p, std::align_val_t(64));
  }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
};

template <class T>
struct Impl {
  using S = Storage<T>;
  using C = typename S::C;
  using K = Kern<C>;
  static constexpr bool kSameType = std::is_same<T, C>::value;

  // The row can be transformed inside y itself when y stores the compute type and every one of
  // its n positions is an output.
  static bool direct(const FwhtParams& p) { return kSameType && p.d_out == p.n; }

  // Rows that are whole (d_in == d_out == n) and packed back to back in x and y can be treated as
  // one long array: the stages of distance < n never cross a row boundary. Short rows are done
  // that way, a chunk of rows per call, so that per-row overhead disappears.
  static bool packed(const FwhtParams& p) {
    auto dense = [&](const RowLayout& l) {
      return l.ndim == 0 || (l.ndim == 1 && l.strides[0] == p.n);
    };
    return p.d_in == p.n && p.d_out == p.n && p.lg_copies == 0 && dense(p.x_layout) && dense(p.y_layout);
  }
  // Packed calls take plan.pack_elems elements at a time (x and y chunks stay in L1). Longer rows
  // have little per-row overhead. 512 is packed too: its two passes (the leaf, then one stage)
  // stay in L1 either way, but one row at a time cost 0.35-0.41 instead of 0.31-0.35 ns per
  // element (Xeon, one thread, 2^22 elements per call).
  static constexpr int64_t kPackMaxN = 512;
  // Rows one stride apart in x and in y (one batch dimension after merging, or a single row).
  static bool evenly_strided(const FwhtParams& p) { return p.x_layout.ndim <= 1 && p.y_layout.ndim <= 1; }

  static C* scratch(int slot, int64_t elems) {
    return static_cast<C*>(thread_scratch(slot, sizeof(C) * size_t(std::max<int64_t>(elems, K::W))));
  }
  static void fence(bool streamed) {
#ifdef ZF_SFENCE
    if (streamed) ZF_SFENCE();  // non-temporal stores are weakly ordered: publish them
#endif
    (void)streamed;
  }

  // Rows (or chunks of short rows) that are not transformed inside y end with a pass from the
  // scratch into y. When that pass is a radix pass, it writes y as 2^lr streams h elements apart;
  // with plain stores every one of those lines is read for ownership, out of order, and that
  // measured twice as slow as writing y in address order. Such rows therefore finish their last
  // pass in the scratch (in L1) and copy it to y in address order (copy_out). Measured on Zen 4,
  // fp32, 2^22 row elements per call, 12 alternating rounds, ns per element, last pass into y ->
  // finished in the scratch:
  //   one thread, out_features = n - 16 (rows 64 bytes short, not streamed): 2^8 0.544 -> 0.362,
  //   2^9 0.647 -> 0.431, 2^10 0.729 -> 0.385, 2^11 0.806 -> 0.605; 2^12 0.512 -> 0.503;
  //   two threads, the same: 2^8 0.387 -> 0.275, 2^9 0.312 -> 0.185, 2^10 0.388 -> 0.245,
  //   2^11 0.419 -> 0.320; out= rows of a wider buffer, 2^8 / 2^9 0.434 / 0.435 -> 0.269 / 0.207.
  // Not when the output streams (non-temporal stores do not read the line: one thread, out= rows
  // of a wider buffer, 2^9 / 2^10 / 2^11 0.334 / 0.340 / 0.387 -> 0.453 / 0.436 / 0.487), not
  // when one pass does the whole row (it writes y in order already), and not for rows of a piece
  // or more (their last pass reads from L2, and the extra copy cost more: one thread 2^13 / 2^14
  // 0.535 -> 0.642, 0.562 -> 0.590 in a first set).
  static bool finish_in_scratch(const FwhtPlan& plan, int64_t n, int64_t len) {
    return !plan.stream && n > (int64_t(K::W) << plan.leaf_radix_log2) && len < plan.piece;
  }
  // Writes w's rows of n positions (len in all) through st in address order, the first `limit`
  // (d_out) positions of each: the rest would be dropped by st anyway, and visiting them cost 10 %
  // with 10 outputs of 256 (one thread, (16384, 200) -> 10).
  template <class St>
  static void copy_out(int64_t len, int64_t n, int64_t limit, const C* w, const St& st) {
    for (int64_t row = 0; row < len; row += n) {
      int64_t c = 0;
      for (; c + K::W <= limit; c += K::W) st.template put<false>(row + c, loadu<typename K::V>(w + row + c));
      if (c < limit) st.template put<true>(row + c, loadu<typename K::V>(w + row + c));
    }
  }
  // A folded row (fold_padding in fwht_cpu.h): w holds its transform of n elements; the row's
  // output is `copies` copies of it, n apart, the last one of all w - 0 and the others w + 0,
  // written by st (a RowStore of the row) up to st.limit. x + (-0) is x - 0, and the zero is a
  // run-time value, so the compiler cannot fold the addition away.
  static void write_copies(const C* w, int64_t n, int64_t copies, const RowStore<T>& st) {
    using V = typename K::V;
    for (int64_t k = 0; k < copies && k * n < st.limit; ++k) {
      const C zero = k + 1 == copies ? C(-0.0) : C(0.0);
      const int64_t end = std::min(n, st.limit - k * n);
      int64_t c = 0;
      for (; c + K::W <= end; c += K::W) st.template put<false>(k * n + c, loadu<V>(w + c) + zero);
      if (c < end) st.template put<true>(k * n + c, loadu<V>(w + c) + zero);
    }
  }
  static void run_rows(const FwhtParams& p, const FwhtPlan& plan, int64_t r0, int64_t r1) {
    const T* x = static_cast<const T*>(p.x);
    T* y = static_cast<T*>(p.y);
    const C scale = C(p.scale);
    const bool scaled = scale != C(1);
    // Intermediate passes run in y itself when it holds the compute type and all n positions,
    // unless the output streams past the caches; then in a per-thread scratch row.
    const bool in_y = kSameType && !plan.stream;
    if (p.n <= kPackMaxN && packed(p)) {
      const int64_t chunk_rows = std::max<int64_t>(1, plan.pack_elems / p.n);
      C* buf = in_y ? nullptr : scratch(0, chunk_rows * p.n);
      for (int64_t r = r0; r < r1; r += chunk_rows) {
        const int64_t len = std::min(chunk_rows, r1 - r) * p.n;
        T* yr = y + r * p.n;
        C* work = in_y ? reinterpret_cast<C*>(yr) : buf;
        K::stages(std::max<int64_t>(len, K::W), 1, p.n, RowLoad<T>{x + r * p.n, len},
                  RowStore<T>{yr, len, scale, scaled, plan.stream}, work, plan.leaf_radix_log2);
      }
      fence(plan.stream);
      return;
    }
    if (p.n <= kPackMaxN && p.n >= K::W && evenly_strided(p)) {
      // Padded, truncated or strided short rows, a chunk of rows at a time (RowsLoad), not one row
      // at a time (whose per-row cost dominates such short rows). Measured on Zen 4, one thread,
      // fp32, 2^22 row elements per call, twelve alternating rounds, ns per row element, one row
      // at a time -> chunks (these sizes take one pass, so this is the chunking alone): one thread
      // 2^6 out_features = n - 16 0.564 -> 0.316, d_in = n - 24 0.764 -> 0.441, 2^7 0.414 ->
      // 0.329 and 0.522 -> 0.369; two threads 2^6 0.435 -> 0.237 and 0.509 -> 0.272.
      const int64_t chunk_rows = std::max<int64_t>(1, plan.pack_elems / p.n);
      const int lg_n = __builtin_ctzll(p.n);
      const int64_t sx = p.x_layout.ndim == 0 ? 0 : p.x_layout.strides[0];
      const int64_t sy = p.y_layout.ndim == 0 ? 0 : p.y_layout.strides[0];
      // Intermediate passes run in y when its rows hold all n positions back to back.
      const bool chunk_in_y = in_y && p.d_out == p.n && p.lg_copies == 0 && (p.y_layout.ndim == 0 || sy == p.n);
      C* buf = chunk_in_y ? nullptr : scratch(0, chunk_rows * p.n);
      for (int64_t r = r0; r < r1; r += chunk_rows) {
        const int64_t len = std::min(chunk_rows, r1 - r) * p.n;
        T* yr = y + r * sy;
        C* work = chunk_in_y ? reinterpret_cast<C*>(yr) : buf;
        const RowsStore<T> st{yr, sy, p.d_out, lg_n, scale, scaled, plan.stream};
        if (p.lg_copies > 0) {
          K::stages(len, 1, p.n, RowsLoad<T>{x + r * sx, sx, p.d_in, lg_n}, typename K::WorkIO{buf}, buf,
                    plan.leaf_radix_log2);
          for (int64_t i = 0; i < len; i += p.n) write_copies(buf + i, p.n, int64_t(1) << p.lg_copies, st.row(i));
        } else if (!chunk_in_y && finish_in_scratch(plan, p.n, len)) {
          K::stages(len, 1, p.n, RowsLoad<T>{x + r * sx, sx, p.d_in, lg_n}, typename K::WorkIO{buf}, buf,
                    plan.leaf_radix_log2);
          copy_out(len, p.n, p.d_out, buf, st);
        } else {
          K::stages(len, 1, p.n, RowsLoad<T>{x + r * sx, sx, p.d_in, lg_n}, st, work, plan.leaf_radix_log2);
        }
      }
      fence(plan.stream);
      return;
    }
    const bool row_in_y = in_y && p.d_out == p.n && p.lg_copies == 0;
    C* buf = row_in_y ? nullptr : scratch(0, p.n);
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + row_offset(p.x_layout, r);
      T* yr = y + row_offset(p.y_layout, r);
      C* work = row_in_y ? reinterpret_cast<C*>(yr) : buf;
      if (r + 1 < r1) {  // fetch the next row while this one's later passes run
        t_prefetch.read = reinterpret_cast<const char*>(x + row_offset(p.x_layout, r + 1));
        t_prefetch.read_lines = lines_of<T>(p.d_in);
        t_prefetch.write = reinterpret_cast<char*>(y + row_offset(p.y_layout, r + 1));
        t_prefetch.write_lines = plan.stream ? 0 : lines_of<T>(p.d_out);
      }
      const RowStore<T> st{yr, p.d_out, scale, scaled, plan.stream};
      if (p.lg_copies > 0) {
        row_stages(plan, p.n, xr, p.d_in, typename K::WorkIO{buf}, buf);
        write_copies(buf, p.n, int64_t(1) << p.lg_copies, st);
      } else if (!row_in_y && finish_in_scratch(plan, p.n, p.n)) {
        row_stages(plan, p.n, xr, p.d_in, typename K::WorkIO{buf}, buf);
        copy_out(p.n, p.n, p.d_out, buf, st);
      } else {
        row_stages(plan, p.n, xr, p.d_in, st, work);
      }
    }
    t_prefetch = NextRowPrefetch{};
    fence(plan.stream);
  }

  // All stages of one row of `len` elements (valid of them read from x, zero beyond), stored by
  // st, intermediate passes in work (len elements). Rows beyond L1 are done in L1-sized pieces
  // first (all passes of a piece while it is in L1), then the stages across pieces (fewer
  // passes over L2). The stage order, hence every bit of the result, is that of one sweep.
  template <class St>
  static void row_stages(const FwhtPlan& plan, int64_t len, const T* x, int64_t valid, const St& st,
                         C* work) {
    const int64_t piece = piece_elems(plan, len);
    if (len < 2 * piece) {
      K::stages(std::max<int64_t>(len, K::W), 1, len, RowLoad<T>{x, valid}, st, work, plan.leaf_radix_log2);
      return;
    }
    for (int64_t b = 0; b < len; b += piece) {
      const int64_t v = std::min(std::max<int64_t>(valid - b, 0), piece);
      if (v == 0) {  // H * 0 = 0: a piece entirely in the padding
        std::memset(static_cast<void*>(work + b), 0, sizeof(C) * size_t(piece));
        continue;
      }
      K::stages(piece, 1, piece, RowLoad<T>{x + b, v}, RowStore<C>{work + b, piece, C(1), false, false},
                work + b, plan.leaf_radix_log2);
    }
    K::stages(len, piece, len, typename K::WorkIO{work}, st, work);
  }
  // L1-sized piece of a row (plan.piece, see make_plan_t). Rows of 512 KB take pieces twice that
  // size where pieces are 32 KB (L1d of 48 KB): three stages are then left across the 8 pieces, one
  // pass over L2 instead of two (2 + 2 stages across 16 pieces of 32 KB); the pieces' passes mostly
  // stay in L1 (measured on a Xeon, one thread, n = 2^17 fp32: 0.485-0.50 -> 0.46-0.47 ns per
  // element; 1 MB rows with 64 KB or 128 KB pieces were slower or no faster).
  static int64_t piece_elems(const FwhtPlan& plan, int64_t len) {
    const int64_t bytes = len * int64_t(sizeof(C)), piece_bytes = plan.piece * int64_t(sizeof(C));
    return bytes == (int64_t(512) << 10) && piece_bytes >= (int64_t(32) << 10) ? 2 * plan.piece : plan.piece;
  }

  static void run_blocks(const FwhtParams& p, const FwhtPlan& plan, int64_t r, void* work_buf,
                         int64_t b0, int64_t b1) {
    C* work = work_row(p, plan, r, work_buf);
    for (int64_t b = b0; b < b1; ++b) {
      const bool more = b + 1 < b1;
      sweep1_block(p, plan, r, work, b, more ? r : -1, more ? work : nullptr, b + 1);
    }
    t_prefetch = NextRowPrefetch{};
    fence(plan.stream_blocks);
  }
  static C* work_row(const FwhtParams& p, const FwhtPlan& plan, int64_t r, void* work_buf) {
    return plan.needs_work ? static_cast<C*>(work_buf)
                           : reinterpret_cast<C*>(static_cast<T*>(p.y) + row_offset(p.y_layout, r));
  }
  // The first sweep's block b of row r into work; while its later passes run, block nb of row nr
  // (into nwork) is fetched (nr < 0: nothing).
  // When the row is larger than the last-level cache can hold for the second sweep, a block's
  // passes run in a per-thread scratch and only its final pass writes (non-temporally) to the
  // work row. Rows that fit stay cached: the second sweep reads them right back.
  static void sweep1_block(const FwhtParams& p, const FwhtPlan& plan, int64_t r, C* work, int64_t b,
                           int64_t nr, C* nwork, int64_t nb) {
    const int64_t B = plan.block;
    const bool stream = plan.stream_blocks;
    const T* xr = static_cast<const T*>(p.x) + row_offset(p.x_layout, r);
    C* wb = work + b * B;
    const int64_t valid = std::min(std::max<int64_t>(p.d_in - b * B, 0), B);
    if (valid == 0) {  // H * 0 = 0: a block entirely in the padding
      std::memset(static_cast<void*>(wb), 0, sizeof(C) * size_t(B));
      return;
    }
    const int64_t next_valid = nr < 0 ? 0 : std::min(std::max<int64_t>(p.d_in - nb * B, 0), B);
    if (next_valid > 0) {  // fetch the next block while this one's later passes run
      t_prefetch.read = reinterpret_cast<const char*>(static_cast<const T*>(p.x) + row_offset(p.x_layout, nr) + nb * B);
      t_prefetch.read_lines = lines_of<T>(next_valid);
      t_prefetch.write = reinterpret_cast<char*>(nwork + nb * B);
      t_prefetch.write_lines = stream ? 0 : lines_of<C>(B);
    } else {
      t_prefetch = NextRowPrefetch{};
    }
    C* buf = stream ? scratch(0, B) : nullptr;
    row_stages(plan, B, xr + b * B, valid, RowStore<C>{wb, B, C(1), false, stream}, stream ? buf : wb);
  }

  // Rows r0..r1, one thread: the first sweep of row r, block by block, with a slice of row r-1's
  // second sweep after each block (two work rows, used in turn). Every row gets the same
  // operations in the same order as run_row, so the result is bitwise the same.
  static void run_rows_overlapped(const FwhtParams& p, const FwhtPlan& plan, int64_t r0, int64_t r1,
                                  void* work_buf) {
    C* work[2] = {static_cast<C*>(work_buf), static_cast<C*>(work_buf) + p.n};
    const int64_t nb = plan.num_blocks, ng = plan.num_groups;
    for (int64_t r = r0; r <= r1; ++r) {
      for (int64_t b = 0; b < nb; ++b) {
        if (r < r1) {
          const bool last = b + 1 == nb;
          const int64_t nr = last ? (r + 1 < r1 ? r + 1 : -1) : r;
          sweep1_block(p, plan, r, work[r & 1], b, nr, nr < 0 ? nullptr : work[nr & 1], last ? 0 : b + 1);
        }
        if (r > r0) groups(p, plan, r - 1, work[(r - 1) & 1], b * ng / nb, (b + 1) * ng / nb);
      }
    }
    t_prefetch = NextRowPrefetch{};
    fence(plan.stream || plan.stream_blocks);
  }

  // One long row, both sweeps, on the calling thread.
  static void run_row(const FwhtParams& p, const FwhtPlan& plan, int64_t r, void* work_buf) {
    run_blocks(p, plan, r, work_buf, 0, plan.num_blocks);
    run_groups(p, plan, r, work_buf, 0, plan.num_groups);
  }

  static void run_groups(const FwhtParams& p, const FwhtPlan& plan, int64_t r, const void* work_buf,
                         int64_t g0, int64_t g1) {
    groups(p, plan, r, work_buf, g0, g1);
    fence(plan.stream);
  }
  static void groups(const FwhtParams& p, const FwhtPlan& plan, int64_t r, const void* work_buf,
                     int64_t g0, int64_t g1) {
    T* yr = static_cast<T*>(p.y) + row_offset(p.y_layout, r);
    const C* work = plan.needs_work ? static_cast<const C*>(work_buf) : reinterpret_cast<const C*>(yr);
    const int64_t G = plan.group, len = plan.num_blocks * G;
    const GroupMap map{__builtin_ctzll(G), __builtin_ctzll(plan.block)};
    C* buf = scratch(1, len);
    const C scale = C(p.scale);
    for (int64_t g = g0; g < g1; ++g) {
      const int64_t col = g * G;
      MappedLoad<typename K::WorkIO> ld{typename K::WorkIO{const_cast<C*>(work) + col}, map};
      // Positions are relative to the group's first column; the store drops those >= d_out.
      MappedStore<RowStore<T>> st{RowStore<T>{yr + col, p.d_out - col, scale, scale != C(1), plan.stream}, map};
      K::stages(len, G, len, ld, st, buf);
    }
  }
};

// Block size (half of L2, so 1 MB with the 2 MB L2 of the Xeon these comments measured, 512 KB on
// Zen 4): rows up to this many bytes (compute type) are transformed in one sweep with all passes
// in L2; longer rows go through two sweeps, in blocks of at most this size.
// Rows of up to kBlocks such blocks are cut into exactly kBlocks blocks (128 KB ... 1 MB):
// the stages across the blocks are then one pass over column groups of 8 rows, and the smaller
// blocks leave L2 room for the input streaming in (measured on 2^22-element calls, ns per element,
// 1 MB blocks -> 8 blocks: one thread 2^19 0.557 -> 0.526 (it used to be two blocks, the stage
// across them fused into the second one's last pass), 2^20 0.623 -> 0.592; two threads 2^19
// 0.279 -> 0.267, 2^20 0.321 -> 0.299. Four or sixteen blocks, or 8 blocks of 128 KB at 2^18
// instead of one sweep, were no faster).
constexpr int64_t kBlocks = 8;
// A column group gathers about this many bytes (num_blocks rows x group columns): it stays in L1/L2
// while the across-block stages run on it.
constexpr int64_t kGroupBytes = int64_t(32) << 10;
// Rows at least this long are split into blocks when there are fewer rows than threads.
constexpr int64_t kSplitMinBytes = int64_t(32) << 10;
// Outputs at least this large (all rows) are written with non-temporal stores: far beyond L2 and
// likely beyond the last-level cache, where the saved read-for-ownership pays (measured on a Xeon:
// 2^26 fp32 elements, n = 2^10, 0.62 instead of 0.85 ns per element; at 2^22 elements streaming
// was slower there).
constexpr int64_t kStreamBytes = int64_t(32) << 20;

inline int64_t pow2_floor(int64_t v) {
  int64_t p = 1;
  while (p * 2 <= v) p *= 2;
  return p;
}

template <class C>
FwhtPlan make_plan_t(const FwhtParams& p, int threads) {
  FwhtPlan plan{};
  const int64_t W = Lanes<C>::W;
  const int64_t esz = sizeof(C);
  const int64_t storage_bytes = (p.dtype == DType::kFloat16 || p.dtype == DType::kBFloat16) ? 2 : esz;
  const CpuTuning& tune = cpu_tuning();
  const int64_t out_bytes = p.rows * p.d_out * storage_bytes, in_bytes = p.rows * p.d_in * storage_bytes;
  // On one thread, outputs also stream when input and output together fill the last-level cache:
  // they cannot both stay there, and with the output bypassing it the input can (often the same
  // tensor call after call, or one a previous layer has just written). Measured on an AMD EPYC
  // (Zen 4) with a 32 MB L3, fp32, 2^22 elements per call, ns per element: n = 2^6 ... 2^8
  // 0.21-0.29 -> 0.17-0.19, 2^10 0.26-0.31 -> 0.24-0.29; rows of 2^11 ... 2^16, interleaved
  // through torch (six rounds): 0.39/0.43/0.47/0.49/0.60/0.55 -> 0.33/0.31/0.39/0.42/0.43/0.47.
  // The price: when the recycled output's lines are still dirty in the caches (something wrote
  // into that memory just before) each line is flushed first; a standalone harness that rewrote
  // the output between calls measured 2^11/2^15 9 % and 5 % faster, 2^12 17 % and 2^13/2^14/2^16
  // 5 % slower. On two threads streaming measured slower (short rows 0.09-0.13 -> 0.15-0.19).
  // Blocked rows transformed inside y never stream (below).
  plan.stream = out_bytes >= kStreamBytes ||
                (threads == 1 && tune.l3_bytes > 0 && in_bytes + out_bytes >= tune.l3_bytes);
  // In place (y is x) nothing streams: every output line has just been read, so it is in the
  // cache and already owned (no read for ownership to save), and a non-temporal store onto a
  // cached line flushes it first. Measured with peer_bench's in-place protocol (fresh copy of the
  // input before each call), one thread, fp32, 2^22 elements per call, ns per element: streamed
  // 2^10 / 2^12 / 2^15 / 2^16 0.36 / 0.53 / 0.78 / 0.61, against 0.31 / 0.31 / 0.41 / 0.45 out of
  // place.
  const bool in_place = p.x != nullptr && p.x == p.y;
  if (in_place) plan.stream = false;
  if (tune.stream_override >= 0) plan.stream = tune.stream_override == 1;
  // Pieces: the largest power of two at most 2/3 of L1d (32 KB of a 48 KB L1d, 16 KB of 32 KB).
  // fold_padding (fwht_cpu_dispatch.cpp) uses the same rule, before any plan exists.
  plan.piece = pow2_floor(tune.l1d_bytes * 2 / 3) / esz;
  // Packed chunks: an eighth of L1d (measured on Zen 4, n = 2^9 streamed: 16 KB chunks 0.38-0.41,
  // 4 KB chunks 0.21-0.24 ns per element).
  plan.pack_elems = std::max<int64_t>(pow2_floor(tune.l1d_bytes / 8) / esz, 512);
  // Zen 4 splits each 512-bit operation in two; there a leaf of 8 vectors (7 stages per pass)
  // beat one of 16 (8 stages): measured, one thread, fp32, 2^22 elements per call, n = 2^12:
  // 0.42-0.47 -> 0.34-0.36 ns per element, n = 2^16: 0.47-0.51 -> 0.42-0.45.
  plan.leaf_radix_log2 = tune.amd ? std::min(ZF_RADIX_LOG2, 3) : ZF_RADIX_LOG2;
  // A row of at most 2^ZF_RADIX_LOG2 vectors (fp32 n <= 2^8 with AVX-512) fits one pass. That
  // pass is taken when its stores do not miss: streamed (no read for ownership) or in place (the
  // lines were just loaded). Out of place with plain stores, the cap stays (see Kern::stages).
  // Measured on Zen 4, fp32 n = 2^8, 2^22 elements per call, five peer_bench runs each, ns per
  // element, one pass -> capped: one thread (streamed) 0.190 -> 0.254, in place 0.196 -> 0.221 on
  // one thread and 0.107 -> 0.117 on two; two threads out of place 0.211 -> 0.134.
  // Only when x and y rows step alike: bursts of 16 lines are sensitive to where y sits relative
  // to x (burst_width.c), and with different steps every relative offset comes round. One thread,
  // streamed out= rows of a wider buffer (320 elements apart), 2^8: 0.784 in one pass, 0.373-0.462
  // capped at 8 vectors (12 alternating rounds).
  const bool same_row_steps = p.rows <= 1 || (p.x_layout.ndim == 1 && p.y_layout.ndim == 1 &&
                                              p.x_layout.strides[0] == p.y_layout.strides[0]);
  if (p.n <= (W << ZF_RADIX_LOG2) && (plan.stream || in_place) && same_row_steps)
    plan.leaf_radix_log2 = ZF_RADIX_LOG2;
  int64_t block = pow2_floor(tune.l2_bytes / 2) / esz;
  // One sweep only for rows of up to a quarter of L2: the row and the input streaming in must both
  // stay in L2 (measured on Zen 4 (1 MB L2), one thread, n = 2^17: one sweep 0.53-0.56, eight
  // blocks of 64 KB 0.47-0.56 ns per element; on the Xeon (2 MB L2), 1 MB rows in one sweep or in
  // eight blocks were equally fast).
  const int64_t one_sweep = pow2_floor(tune.l2_bytes / 4) / esz;
  // Rows exactly as large as L2 take 4 blocks of L2/4 instead (the stage across them joins the
  // second sweep): Zen 4, n = 2^18 fp32, 2^22 elements per call, 0.52 -> 0.50 ns per element on
  // one thread, 0.282 -> 0.270 on two; larger rows were slower in 4 blocks.
  const int64_t blocks = p.n * esz == pow2_floor(tune.l2_bytes) ? 4 : kBlocks;
  if (p.n > one_sweep && p.n <= kBlocks * block) block = p.n / blocks;
  if (p.rows < threads && p.n * esz >= kSplitMinBytes) {
    // Fewer rows than threads: cut each row into at least 2*threads blocks so all threads work.
    int64_t want = 1;
    while (want < 2 * threads) want <<= 1;
    block = std::min(block, std::max<int64_t>(p.n / want, 4096 / esz));
  }
  if (p.n <= block || p.lg_copies > 0) {  // folded rows fit an L1 piece (fold_padding)
    plan.blocked = false;
    plan.block = p.n;
    plan.num_blocks = 1;
    plan.rows_grain = std::max<int64_t>(1, (int64_t(16) << 10) / std::max<int64_t>(p.n, 1));
    return plan;
  }
  plan.blocked = true;
  plan.block = block;
  plan.num_blocks = p.n / block;
  int64_t group = W;
  while (group * 2 <= block && plan.num_blocks * group * 2 * esz <= kGroupBytes) group *= 2;
  plan.group = group;
  plan.num_groups = block / group;
  const bool same = (p.dtype == DType::kFloat32 || p.dtype == DType::kFloat64);
  plan.needs_work = !(same && p.d_out == p.n);
  // One thread with a streamed output and rows at least as large as L2: the first sweep goes into
  // a work row (it waits in L2/L3 for the second sweep) and the second sweep streams from it into
  // y, so y's lines are never read for ownership. Measured on Zen 4 (1 MB L2), fp32, 2^22 elements
  // per call, alternating peer_bench runs, ns per element, in y -> work row: 2^18 0.605 / 0.684 ->
  // 0.575 / 0.594, 2^19 0.628 -> 0.558, 2^20 0.639 -> 0.571 (two sets of 8 and 10 rounds); 2^17
  // (512 KB rows, which stay in L2) 0.513 -> 0.526, so smaller rows stay in y. On two threads the
  // work row was slower (2^17 ... 2^19 0.25 / 0.31 / 0.31 -> 0.29 / 0.33 / 0.33).
  if (plan.stream && !in_place && threads == 1 && p.n * esz >= tune.l2_bytes) plan.needs_work = true;
  plan.work_bytes = plan.needs_work ? p.n * esz : 0;
  // Non-temporal stores to lines that are in the cache are slow (the line is flushed first). When
  // the row is transformed inside y, the second sweep writes exactly the lines it has just read:
  // then neither sweep streams (measured on Zen 4 (32 MB L3), fp32, 2^26 elements per call, one
  // thread, rows of 2^17 ... 2^22: 0.96-1.08 ns per element streamed, 0.59-0.76 not).
  // With a separate work row, the second sweep streams into y, and the first sweep streams into
  // the work row only when that row could not wait in the last-level cache for the second.
  const int64_t l3 = tune.l3_bytes > 0 ? tune.l3_bytes : (int64_t(32) << 20);
  if (!plan.needs_work && tune.stream_override != 1) plan.stream = false;
  plan.stream_blocks = plan.stream && plan.needs_work && p.n * esz > l3 / 2;
  // One thread with a work row and a streamed output: each row's second sweep (few stages, its
  // time mostly the streamed stores) runs in slices between the next row's first-sweep blocks
  // (many stages in cache), so that the stores drain while the core computes. Measured on Zen 4,
  // fp32, 2^22 elements per call, one thread, ten alternating peer_bench rounds, ns per element,
  // one row after the other -> overlapped: 2^18 0.596 -> 0.545, 2^19 0.598 -> 0.550, 2^20 0.652 ->
  // 0.611. Not for rows streamed into the work row too (they do not fit the last-level cache).
  plan.overlap_rows = threads == 1 && plan.needs_work && plan.stream && !plan.stream_blocks;
  plan.rows_grain = 1;
  return plan;
}

FwhtPlan plan(const FwhtParams& p, int threads) {
  return p.dtype == DType::kFloat64 ? make_plan_t<double>(p, threads) : make_plan_t<float>(p, threads);
}

#define ZF_DTYPE_SWITCH(DT, ...)                                   \
  switch (DT) {                                                    \
    case DType::kFloat32: { using T = float; __VA_ARGS__; break; }  \
    case DType::kFloat64: { using T = double; __VA_ARGS__; break; } \
    case DType::kFloat16: { using T = F16; __VA_ARGS__; break; }    \
    case DType::kBFloat16: { using T = BF16; __VA_ARGS__; break; }  \
  }

void run_rows(const FwhtParams& p, const FwhtPlan& plan, int64_t r0, int64_t r1) {
  ZF_DTYPE_SWITCH(p.dtype, Impl<T>::run_rows(p, plan, r0, r1));
}
void run_blocks(const FwhtParams& p, const FwhtPlan& plan, int64_t r, void* work, int64_t b0, int64_t b1) {
  ZF_DTYPE_SWITCH(p.dtype, Impl<T>::run_blocks(p, plan, r, work, b0, b1));
}
void run_row(const FwhtParams& p, const FwhtPlan& plan, int64_t r, void* work) {
  ZF_DTYPE_SWITCH(p.dtype, Impl<T>::run_row(p, plan, r, work));
}
void run_rows_overlapped(const FwhtParams& p, const FwhtPlan& plan, int64_t r0, int64_t r1, void* work) {
  ZF_DTYPE_SWITCH(p.dtype, Impl<T>::run_rows_overlapped(p, plan, r0, r1, work));
}
void run_groups(const FwhtParams& p, const FwhtPlan& plan, int64_t r, const void* work, int64_t g0,
                int64_t g1) {
  ZF_DTYPE_SWITCH(p.dtype, Impl<T>::run_groups(p, plan, r, work, g0, g1));
}
#undef ZF_DTYPE_SWITCH

}  // namespace

const KernelTable kTable = {ZF_ISA_NAME, &plan, &run_rows, &run_blocks, &run_groups, &run_row, &run_rows_overlapped};

}  // namespace ZF_ISA_NS
}  // namespace cpu
}  // namespace zerofwht
