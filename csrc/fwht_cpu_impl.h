// Body of the C++ CPU Walsh-Hadamard kernels, written once with GCC/Clang vector extensions and
// compiled once per instruction set. Not a normal header: each fwht_cpu_<isa>.cpp includes the
// standard headers, switches the target with `#pragma GCC target`, defines
//   ZF_ISA_NS      namespace of this variant (avx512 / avx2 / generic)
//   ZF_ISA_NAME    its name as a string
//   ZF_VEC_BYTES   vector register width in bytes (64 / 32 / 16)
//   ZF_RADIX_LOG2  log2 of how many vectors one pass keeps in registers (4 with 32 registers,
//                  3 with 16)
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

template <class V, class P>
inline V loadu(const P* p) {  // unaligned vector load
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}
template <class V, class P>
inline void storeu(P* p, const V& v) {  // unaligned vector store
  std::memcpy(p, &v, sizeof(V));
}

// ---- storage types: how a vector of W elements is loaded / stored in the compute type ----------
template <class T> struct Storage;
template <> struct Storage<float> {
  using C = float;
  using V = vf;
  static V load(const float* p) { return loadu<V>(p); }
  static void store(float* p, V v) { storeu(p, v); }
};
template <> struct Storage<double> {
  using C = double;
  using V = vd;
  static V load(const double* p) { return loadu<V>(p); }
  static void store(double* p, V v) { storeu(p, v); }
};
template <> struct Storage<F16> {
  using C = float;
  using V = vf;
  static V load(const F16* p) { return __builtin_convertvector(loadu<vh>(p), vf); }
  // Conversion in the current rounding mode: round to nearest even, like c10::Half.
  static void store(F16* p, V v) { storeu(p, __builtin_convertvector(v, vh)); }
};
template <> struct Storage<BF16> {
  using C = float;
  using V = vf;
  static V load(const BF16* p) {
    vu32 w = __builtin_convertvector(loadu<vu16>(p), vu32) << 16;
    return (vf)w;
  }
  // Round to nearest even, NaN -> 0x7fc0: exactly c10::BFloat16's round_to_nearest_even.
  static void store(BF16* p, V v) {
    vu32 b = (vu32)v;
    vu32 rounded = (b + ((b >> 16) & 1u) + 0x7fffu) >> 16;
    vu32 nan = (vu32)(v != v);  // all ones in NaN lanes
    vu32 r = (rounded & ~nan) | (nan & 0x7fc0u);
    storeu(p, __builtin_convertvector(r, vu16));
  }
};

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

  template <int D, size_t... I>
  static inline V partner(V v, std::index_sequence<I...>) {  // lane i <- lane i ^ D
    return __builtin_shufflevector(v, v, static_cast<int>(I ^ D)...);
  }
  template <int D, size_t... I>
  static inline V signs(std::index_sequence<I...>) {  // +1 on lower lanes, -1 on upper lanes
    return V{((I & D) ? C(-1) : C(1))...};
  }
  // One in-register stage of distance D: lower lane lo + hi, upper lane lo - hi.
  template <int D>
  static inline V lane_stage(V v) {
    using Seq = std::make_index_sequence<W>;
    return partner<D>(v, Seq{}) + v * signs<D>(Seq{});
  }
  template <int D = 1>
  static inline V lane_stages(V v) {  // all stages of distance < W
    if constexpr (D < W) return lane_stages<2 * D>(lane_stage<D>(v));
    else return v;
  }
  template <int D = 1>
  static inline V lane_stages_below(V v, int64_t n) {  // stages of distance < n (< W)
    if constexpr (D < W) {
      if (D >= n) return v;
      return lane_stages_below<2 * D>(lane_stage<D>(v), n);
    } else {
      return v;
    }
  }
  template <int Rv>
  static inline void across(V* a) {  // stages across Rv registers (distance 1 .. Rv/2 registers)
#pragma GCC unroll 16
    for (int h = 1; h < Rv; h <<= 1) {
#pragma GCC unroll 16
      for (int i = 0; i < Rv; ++i) {
        if (!(i & h)) {
          V lo = a[i], hi = a[i + h];
          a[i] = lo + hi;
          a[i + h] = lo - hi;
        }
      }
    }
  }

  // ---- passes over a logical row; Ld::vec(i) loads lanes [i, i+W), St::vec(i, v) stores them --
  template <int Rv, class Ld, class St>
  static void leaf_pass(int64_t len, const Ld& ld, const St& st) {
    for (int64_t base = 0; base < len; base += Rv * W) {
      V a[Rv];
#pragma GCC unroll 16
      for (int k = 0; k < Rv; ++k) a[k] = lane_stages(ld.vec(base + k * W));
      across<Rv>(a);
#pragma GCC unroll 16
      for (int k = 0; k < Rv; ++k) st.vec(base + k * W, a[k]);
    }
  }
  template <int Rv, class Ld, class St>
  static void radix_pass(int64_t len, int64_t h, const Ld& ld, const St& st) {
    for (int64_t base = 0; base < len; base += h * Rv) {
      for (int64_t j = base; j < base + h; j += W) {
        V a[Rv];
#pragma GCC unroll 16
        for (int k = 0; k < Rv; ++k) a[k] = ld.vec(j + k * h);
        across<Rv>(a);
#pragma GCC unroll 16
        for (int k = 0; k < Rv; ++k) st.vec(j + k * h, a[k]);
      }
    }
  }
  template <class Ld, class St>
  static void leaf_pass_r(int lr, int64_t len, const Ld& ld, const St& st) {
    switch (lr) {
      case 0: return leaf_pass<1>(len, ld, st);
      case 1: return leaf_pass<2>(len, ld, st);
      case 2: return leaf_pass<4>(len, ld, st);
      case 3: return leaf_pass<8>(len, ld, st);
#if ZF_RADIX_LOG2 >= 4
      case 4: return leaf_pass<16>(len, ld, st);
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
    V vec(int64_t i) const { return loadu<V>(w + i); }
    void vec(int64_t i, V v) const { storeu(w + i, v); }
  };

  // Applies the stages of distance h0, 2*h0, ..., len/2 to a logical row of `len` elements
  // (len and h0 powers of two; h0 == 1 or h0 >= W), reading with `ld`, writing the result with
  // `st`; intermediate passes go through `work` (len elements; may be st's own memory).
  template <class Ld, class St>
  static void stages(int64_t len, int64_t h0, const Ld& ld, const St& st, C* work) {
    if (len < W) {  // a single partial vector; lanes >= len stay zero and never mix with ours
      st.vec(0, lane_stages_below(ld.vec(0), len));
      return;
    }
    const int lg = __builtin_ctzll(len);
    int done = __builtin_ctzll(h0);
    int leaf_lr = -1;
    if (done == 0) {
      leaf_lr = lg - LW < LR ? lg - LW : LR;
      done = LW + leaf_lr;
    }
    const int rest = lg - done;
    const int radix_passes = (rest + LR - 1) / LR;
    const int passes = radix_passes + (leaf_lr >= 0 ? 1 : 0);
    if (passes == 0) {  // nothing to combine (len == 1 with h0 == 1 is handled above)
      for (int64_t i = 0; i < len; i += W) st.vec(i, ld.vec(i));
      return;
    }
    WorkIO wk{work};
    int pass = 0;
    auto run = [&](auto&& src, auto&& dst, int lr, int64_t h) {
      if (h == 0) leaf_pass_r(lr, len, src, dst);
      else radix_pass_r(lr, len, h, src, dst);
    };
    // dispatch helpers: the first pass reads ld, the last writes st, the others use the work buffer
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
  V vec(int64_t pos) const {
    if (pos + W <= valid) return S::load(x + pos);
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
  void vec(int64_t pos, V v) const {
    v = v * scale;
    if (pos + W <= limit) {
      S::store(y + pos, v);
    } else if (pos < limit) {
      T tmp[W];
      S::store(tmp, v);
      std::memcpy(static_cast<void*>(y + pos), tmp, sizeof(T) * size_t(limit - pos));
    }
  }
};

// Column-group addressing for the stages across blocks: index i of the gathered group
// (row r = i / group, column c = i % group) is position r * block + c of the row, relative to
// the group's first column.
struct GroupMap {
  int lg_group, lg_block;
  int64_t operator()(int64_t i) const {
    return ((i >> lg_group) << lg_block) + (i & ((int64_t(1) << lg_group) - 1));
  }
};
template <class IO>
struct MappedLoad {
  IO io;
  GroupMap map;
  auto vec(int64_t i) const { return io.vec(map(i)); }
};
template <class IO>
struct MappedStore {
  IO io;
  GroupMap map;
  template <class V>
  void vec(int64_t i, V v) const { io.vec(map(i), v); }
};

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

  static void run_rows(const FwhtParams& p, const FwhtPlan&, int64_t r0, int64_t r1) {
    const bool in_y = direct(p);
    AlignedBuffer<C> scratch(in_y ? 0 : p.n);
    const T* x = static_cast<const T*>(p.x);
    T* y = static_cast<T*>(p.y);
    const C scale = C(p.scale);
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + row_offset(p.x_layout, r);
      T* yr = y + row_offset(p.y_layout, r);
      C* work = in_y ? reinterpret_cast<C*>(yr) : scratch.p;
      K::stages(p.n, 1, RowLoad<T>{xr, p.d_in}, RowStore<T>{yr, p.d_out, scale}, work);
    }
  }

  static void run_blocks(const FwhtParams& p, const FwhtPlan& plan, int64_t r, void* work_buf,
                         int64_t b0, int64_t b1) {
    const T* xr = static_cast<const T*>(p.x) + row_offset(p.x_layout, r);
    C* work = plan.needs_work ? static_cast<C*>(work_buf)
                              : reinterpret_cast<C*>(static_cast<T*>(p.y) + row_offset(p.y_layout, r));
    const int64_t B = plan.block;
    for (int64_t b = b0; b < b1; ++b) {
      C* wb = work + b * B;
      const int64_t valid = std::min(std::max<int64_t>(p.d_in - b * B, 0), B);
      if (valid == 0) {  // H * 0 = 0: a block entirely in the padding
        std::memset(static_cast<void*>(wb), 0, sizeof(C) * size_t(B));
        continue;
      }
      K::stages(B, 1, RowLoad<T>{xr + b * B, valid}, typename K::WorkIO{wb}, wb);
    }
  }

  static void run_groups(const FwhtParams& p, const FwhtPlan& plan, int64_t r, const void* work_buf,
                         int64_t g0, int64_t g1) {
    T* yr = static_cast<T*>(p.y) + row_offset(p.y_layout, r);
    const C* work = plan.needs_work ? static_cast<const C*>(work_buf) : reinterpret_cast<const C*>(yr);
    const int64_t G = plan.group, len = plan.num_blocks * G;
    const GroupMap map{__builtin_ctzll(G), __builtin_ctzll(plan.block)};
    AlignedBuffer<C> scratch(len);
    const C scale = C(p.scale);
    for (int64_t g = g0; g < g1; ++g) {
      const int64_t col = g * G;
      MappedLoad<typename K::WorkIO> ld{typename K::WorkIO{const_cast<C*>(work) + col}, map};
      // Positions are relative to the group's first column; the store drops those >= d_out.
      MappedStore<RowStore<T>> st{RowStore<T>{yr + col, p.d_out - col, scale}, map};
      K::stages(len, G, ld, st, scratch.p);
    }
  }
};

// Block size: rows up to this many bytes (compute type) are transformed in one sweep with all
// passes in L2; longer rows go through two sweeps.
constexpr int64_t kBlockBytes = int64_t(128) << 10;
// A column group gathers about this many bytes (num_blocks rows x group columns): it stays in L1/L2
// while the across-block stages run on it.
constexpr int64_t kGroupBytes = int64_t(32) << 10;
// Rows at least this long are split into blocks when there are fewer rows than threads.
constexpr int64_t kSplitMinBytes = int64_t(32) << 10;

template <class C>
FwhtPlan make_plan_t(const FwhtParams& p, int threads) {
  FwhtPlan plan{};
  const int64_t W = Lanes<C>::W;
  const int64_t esz = sizeof(C);
  int64_t block = kBlockBytes / esz;
  if (p.rows < threads && p.n * esz >= kSplitMinBytes) {
    // Fewer rows than threads: cut each row into at least 2*threads blocks so all threads work.
    int64_t want = 1;
    while (want < 2 * threads) want <<= 1;
    block = std::min(block, std::max<int64_t>(p.n / want, 4096 / esz));
  }
  if (p.n <= block) {
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
  plan.work_bytes = plan.needs_work ? p.n * esz : 0;
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
void run_groups(const FwhtParams& p, const FwhtPlan& plan, int64_t r, const void* work, int64_t g0,
                int64_t g1) {
  ZF_DTYPE_SWITCH(p.dtype, Impl<T>::run_groups(p, plan, r, work, g0, g1));
}
#undef ZF_DTYPE_SWITCH

}  // namespace

const KernelTable kTable = {ZF_ISA_NAME, &plan, &run_rows, &run_blocks, &run_groups};

}  // namespace ZF_ISA_NS
}  // namespace cpu
}  // namespace zerofwht
