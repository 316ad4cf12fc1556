// CUDA kernels of the Walsh-Hadamard transform (torch-free; interface fwht.cuh, launch
// shapes and index arithmetic fwht_plan.h, which also explains the algorithm).
// About 670 lines on purpose (not split): the kernels, their host emulation and the launcher are
// one unit, as the emulation must string together exactly the step functions the kernels use, and
// without -rdc device code cannot be linked across translation units. What could move out already
// has: launch shapes and index arithmetic (fwht_plan.h), the interface (fwht.cuh), the torch glue
// (ops.cu).
//
// Each kernel is a short sequence of steps (load, in-register stages, shuffle stages, shared-
// memory exchange, store) written as __host__ __device__ functions of one thread. The __global__
// functions only string them together; the host emulation (ZEROFWHT_CUDA_EMULATE, used by
// tests/fwht_cuda_emulate.cu) strings the SAME steps together for every thread of a block, with
// the shuffles and shared memory emulated, so what the tests check on the host is the device code.
#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <type_traits>
#include <utility>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda/fwht.cuh"
#include "cuda/fwht_plan.h"

#ifdef ZEROFWHT_CUDA_EMULATE
#include <cstdio>
#include <cstdlib>
#include <vector>
#endif

namespace zerofwht {
namespace cuda {
namespace {

// Rows are processed in chunks whose multi-pass workspace fits comfortably in L2 (A100: 40 MB,
// H100: 50 MB), so pass B reads what pass A wrote from L2 rather than from DRAM.
constexpr int64_t kChunkBytes = 16ll << 20;
// The single-pass lengths pass A may use (the longest that fits the device's shared memory).
constexpr int kMinPassALogN = 10;
constexpr int kMaxDeviceSmem = kMaxCompiledSmem;

#ifdef ZEROFWHT_CUDA_EMULATE
// Tests only: a smaller chunk, so that the host emulation (which can only afford small inputs)
// reaches the loop over several chunks. 0: kChunkBytes.
int64_t g_chunk_bytes_override = 0;
int64_t chunk_bytes() { return g_chunk_bytes_override > 0 ? g_chunk_bytes_override : kChunkBytes; }

// A vector access the device makes must be aligned to its width (a misaligned one faults there but
// works on the host): the emulation checks every such address and stops at the first bad one.
inline void check_aligned(const void* ptr, int bytes, const char* what) {
  if (reinterpret_cast<uintptr_t>(ptr) % bytes != 0) {
    std::fprintf(stderr, "fwht_cuda emulation: misaligned %d-byte %s at %p\n", bytes, what, ptr);
    std::abort();
  }
}
#ifdef __CUDA_ARCH__  // the device pass of the emulation build: no host calls in device code
#define ZF_CHECK_ALIGNED(ptr, bytes, what) ((void)0)
#else
#define ZF_CHECK_ALIGNED(ptr, bytes, what) check_aligned(ptr, bytes, what)
#endif
#else
constexpr int64_t chunk_bytes() { return kChunkBytes; }
#define ZF_CHECK_ALIGNED(ptr, bytes, what) ((void)0)
#endif

// ---- element types: storage bits <-> accumulator ----------------------------------------------
struct F32 {
  using Bits = float;
  using Acc = float;
  static ZF_HD float to_acc(float b) { return b; }
  static ZF_HD float from_acc(float a) { return a; }
};
struct F64 {
  using Bits = double;
  using Acc = double;
  static ZF_HD double to_acc(double b) { return b; }
  static ZF_HD double from_acc(double a) { return a; }
};
struct F16 {  // raw bits in memory; conversions round to nearest even (cvt.rn on the device)
  using Bits = uint16_t;
  using Acc = float;
  static ZF_HD float to_acc(uint16_t b) {
    __half_raw r;
    r.x = b;
    return __half2float(__half(r));
  }
  static ZF_HD uint16_t from_acc(float a) { return __half_raw(__float2half_rn(a)).x; }
};
struct BF16 {
  using Bits = uint16_t;
  using Acc = float;
  static ZF_HD float to_acc(uint16_t b) {
    __nv_bfloat16_raw r;
    r.x = b;
    return __bfloat162float(__nv_bfloat16(r));
  }
  static ZF_HD uint16_t from_acc(float a) { return __nv_bfloat16_raw(__float2bfloat16_rn(a)).x; }
};
// The workspace element of a type: its accumulator, stored as is.
template <class A>
struct AccElem;
template <>
struct AccElem<float> {
  using type = F32;
};
template <>
struct AccElem<double> {
  using type = F64;
};

template <class B, int K>
struct alignas(sizeof(B) * K) Pack {  // K elements moved by one vector instruction
  B e[K];
};

template <class A>
ZF_HD void butterfly(A& lo, A& hi) {
  const A a = lo, b = hi;
  lo = a + b;
  hi = a - b;
}

// Elements [start, start + L) of p + off into acc[0..L); those at or past `limit` are zero and
// never read. vec: p + off is 16-byte aligned (so every piece of P = 16 / sizeof(B) elements at a
// multiple of P is aligned); a piece entirely below `limit` is then one vector load.
template <class T, int L>
ZF_HD void load_run(const typename T::Bits* p, int64_t off, int64_t start, int64_t limit, bool vec,
                    typename T::Acc* acc) {
  using B = typename T::Bits;
  constexpr int P = L < kVecBytes / int(sizeof(B)) ? L : kVecBytes / int(sizeof(B));
#pragma unroll
  for (int q = 0; q < L; q += P) {
    const int64_t s = start + q;
    if (vec && s + P <= limit) {
      ZF_CHECK_ALIGNED(p + off + s, int(sizeof(Pack<B, P>)), "global load");
      const Pack<B, P> v = *reinterpret_cast<const Pack<B, P>*>(p + off + s);
#pragma unroll
      for (int i = 0; i < P; ++i) acc[q + i] = T::to_acc(v.e[i]);
    } else {
#pragma unroll
      for (int i = 0; i < P; ++i) acc[q + i] = s + i < limit ? T::to_acc(p[off + s + i]) : typename T::Acc(0);
    }
  }
}

// acc[0..L) * scale into elements [start, start + L) of p + off, dropping those at or past limit.
template <class T, int L>
ZF_HD void store_run(typename T::Bits* p, int64_t off, int64_t start, int64_t limit, bool vec,
                     const typename T::Acc* acc, typename T::Acc scale) {
  using B = typename T::Bits;
  constexpr int P = L < kVecBytes / int(sizeof(B)) ? L : kVecBytes / int(sizeof(B));
#pragma unroll
  for (int q = 0; q < L; q += P) {
    const int64_t s = start + q;
    if (vec && s + P <= limit) {
      Pack<B, P> v;
#pragma unroll
      for (int i = 0; i < P; ++i) v.e[i] = T::from_acc(acc[q + i] * scale);
      ZF_CHECK_ALIGNED(p + off + s, int(sizeof(Pack<B, P>)), "global store");
      *reinterpret_cast<Pack<B, P>*>(p + off + s) = v;
    } else {
#pragma unroll
      for (int i = 0; i < P; ++i)
        if (s + i < limit) p[off + s + i] = T::from_acc(acc[q + i] * scale);
    }
  }
}

// ---- the row kernel --------------------------------------------------------------------------
struct RowArgs {
  const void* x;         // input base (In::Bits)
  void* y;               // output base (Out::Bits)
  int64_t segments;      // rows * 2^log_segs: the "rows" of this launch
  int log_segs;          // segments per original row (pass A: N1; single pass: 0)
  int64_t x_row_stride;  // elements between original rows of x
  int64_t y_row_stride;  // elements between original rows of y
  int64_t d_in;          // elements of an original row that are read (the rest are zero)
  int64_t d_out;         // elements of an original row that are written
  double scale;          // applied at the store
  bool x_vec, y_vec;     // bases and strides (row and segment) are 16-byte multiples
};

template <class In, class Out, int LOG_N>
struct Row {
  using A = typename In::Acc;
  using BI = typename In::Bits;
  using BO = typename Out::Bits;
  // A function, not a static data member: device code may not odr-use a class-type constant.
  static ZF_HD constexpr RowConfig cfg() { return row_config(LOG_N, int(sizeof(BI)), int(sizeof(A))); }
  static constexpr int N = 1 << LOG_N, E = 1 << cfg().log_e, W = 1 << cfg().log_warps, K = 1 << cfg().log_k;
  static constexpr int kLogTpr = LOG_N - cfg().log_e;  // threads per row, log2
  static constexpr int VA = kVecBytes / int(sizeof(A));

  struct Where {  // one thread's row: offsets of its segment, and how much of it is read/written
    int64_t x_off, y_off, lim_in, lim_out;
  };

  // Thread t of block `block`. Threads past the last row get limits 0: they run every step (the
  // shuffles and barriers need them) but read and write nothing.
  static ZF_HD Where locate(const RowArgs& a, int64_t block, int t) {
    const int64_t q = block * cfg().rows_per_block + (t >> kLogTpr);
    if (q >= a.segments) return Where{0, 0, 0, 0};
    const int64_t r = q >> a.log_segs, g = q & ((int64_t(1) << a.log_segs) - 1);
    return Where{r * a.x_row_stride + (g << LOG_N), r * a.y_row_stride + (g << LOG_N),
                 a.d_in - (g << LOG_N), a.d_out - (g << LOG_N)};
  }

  static ZF_HD void load(const RowArgs& a, const Where& w, int tr, A (&r)[E]) {
    load_run<In, E>(static_cast<const BI*>(a.x), w.x_off, index_a(cfg(), tr, 0), w.lim_in, a.x_vec, r);
  }

  static ZF_HD void thread_stages(A (&r)[E]) {  // the e bits
#pragma unroll
    for (int d = 1; d < E; d <<= 1)
#pragma unroll
      for (int j = 0; j < E; ++j)
        if (!(j & d)) butterfly(r[j], r[j | d]);
  }

  // Lane bit b: r holds this thread's elements, o the partner's (thread tr ^ 2^b).
  static ZF_HD void lane_combine(A (&r)[E], const A (&o)[E], int tr, int b) {
    const bool upper = (tr >> b) & 1;
#pragma unroll
    for (int j = 0; j < E; ++j) r[j] = upper ? o[j] - r[j] : r[j] + o[j];
  }

  // Phase A -> shared memory (16-byte chunks, swizzled); s: the row's segment.
  static ZF_HD void smem_store(A* s, int tr, const A (&r)[E]) {
#pragma unroll
    for (int j = 0; j < E; j += VA) {
      Pack<A, VA> v;
#pragma unroll
      for (int i = 0; i < VA; ++i) v.e[i] = r[j + i];
      A* dst = s + smem_index(cfg(), int(sizeof(A)), index_a(cfg(), tr, j));
      ZF_CHECK_ALIGNED(dst, int(sizeof(Pack<A, VA>)), "shared store");
      *reinterpret_cast<Pack<A, VA>*>(dst) = v;
    }
  }

  // Shared memory -> phase B (runs of K columns, at most one chunk per access).
  static ZF_HD void smem_load(const A* s, int tr, A (&r)[E]) {
    constexpr int P = K < VA ? K : VA;
#pragma unroll
    for (int slot = 0; slot < E; slot += P) {
      const A* src = s + smem_index(cfg(), int(sizeof(A)), index_b(cfg(), tr, slot));
      ZF_CHECK_ALIGNED(src, int(sizeof(Pack<A, P>)), "shared load");
      const Pack<A, P> v = *reinterpret_cast<const Pack<A, P>*>(src);
#pragma unroll
      for (int i = 0; i < P; ++i) r[slot + i] = v.e[i];
    }
  }

  static ZF_HD void warp_stages(A (&r)[E]) {  // the warp bits, slots K, 2K, ...
#pragma unroll
    for (int d = K; d < E; d <<= 1)
#pragma unroll
      for (int j = 0; j < E; ++j)
        if (!(j & d)) butterfly(r[j], r[j | d]);
  }

  static ZF_HD void store_a(const RowArgs& a, const Where& w, int tr, const A (&r)[E]) {
    store_run<Out, E>(static_cast<BO*>(a.y), w.y_off, index_a(cfg(), tr, 0), w.lim_out, a.y_vec, r, A(a.scale));
  }

  static ZF_HD void store_b(const RowArgs& a, const Where& w, int tr, const A (&r)[E]) {
#pragma unroll
    for (int slot = 0; slot < E; slot += K)
      store_run<Out, K>(static_cast<BO*>(a.y), w.y_off, index_b(cfg(), tr, slot), w.lim_out, a.y_vec, r + slot,
                        A(a.scale));
  }
};

template <class In, class Out, int LOG_N>
__global__ void __launch_bounds__(Row<In, Out, LOG_N>::cfg().threads) fwht_rows_kernel(RowArgs a) {
  using R = Row<In, Out, LOG_N>;
  using A = typename R::A;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int t = threadIdx.x, tr = t & ((1 << R::kLogTpr) - 1);
  const typename R::Where w = R::locate(a, blockIdx.x, t);
  A r[R::E];
  R::load(a, w, tr, r);
  R::thread_stages(r);
#pragma unroll
  for (int b = 0; b < R::cfg().log_lanes; ++b) {
    A o[R::E];
#pragma unroll
    for (int j = 0; j < R::E; ++j) o[j] = __shfl_xor_sync(0xffffffffu, r[j], 1 << b);
    R::lane_combine(r, o, tr, b);
  }
  if constexpr (R::W > 1) {
    A* s = reinterpret_cast<A*>(smem_raw) + (t >> R::kLogTpr) * R::N;
    R::smem_store(s, tr, r);
    __syncthreads();
    R::smem_load(s, tr, r);
    R::warp_stages(r);
    R::store_b(a, w, tr, r);
  } else {
    R::store_a(a, w, tr, r);
  }
}

// ---- the column kernel (pass B of the multi-pass transform) ----------------------------------
struct ColArgs {
  const void* ws;        // workspace (Acc): rows of n = 2^(log_n1 + log_n2) elements, contiguous
  void* y;               // output base (T::Bits)
  int64_t rows;          // rows of this chunk
  int64_t y_row_stride;  // elements between rows of y
  int64_t d_out;         // elements written per row
  double scale;          // applied at the store
};

template <class T>
struct Col {
  using A = typename T::Acc;
  using B = typename T::Bits;
  static constexpr int kLogSlots = sizeof(A) == 8 ? 4 : 5;  // == col_config().log_slots
  static constexpr int S = 1 << kLogSlots;

  // Unit u of round k of the tile `block`: load its S elements, run the round's stages, store.
  // Round 0 loads from the workspace, later rounds from the tile; the last round stores to y
  // (times the scale, dropping columns >= d_out), earlier rounds to the tile.
  static ZF_HD void unit(const ColArgs& a, const ColConfig& c, int64_t block, int k, int64_t u, A* tile) {
    const int log_tiles = c.log_n2 - c.log_c;
    const int64_t row = block >> log_tiles;
    const int64_t col0 = (block & ((int64_t(1) << log_tiles) - 1)) << c.log_c;
    const int64_t n = int64_t(1) << (c.log_n1 + c.log_n2);
    const int b = round_bits(c, k);
    const bool first = k == 0, last = k == c.rounds - 1;
    A v[S];
    // Positions are computed twice (load, store) rather than kept: 3 x S registers saved.
#pragma unroll
    for (int j = 0; j < S; ++j) {
      int i1 = 0, col = 0;
      if (!col_position(c, k, u, j, &i1, &col)) {
        v[j] = A(0);
      } else if (first) {
        v[j] = static_cast<const A*>(a.ws)[row * n + (int64_t(i1) << c.log_n2) + col0 + col];
      } else {
        v[j] = tile[tile_index(c, i1, col)];
      }
    }
#pragma unroll
    for (int s = 0; s < kLogSlots; ++s)
      if (s < b)
#pragma unroll
        for (int j = 0; j < S; ++j)
          if (!(j & (1 << s))) butterfly(v[j], v[j | (1 << s)]);
    const A scale = A(a.scale);
#pragma unroll
    for (int j = 0; j < S; ++j) {
      int i1 = 0, col = 0;
      if (!col_position(c, k, u, j, &i1, &col)) continue;
      if (last) {
        const int64_t e = (int64_t(i1) << c.log_n2) + col0 + col;
        if (e < a.d_out) static_cast<B*>(a.y)[row * a.y_row_stride + e] = T::from_acc(v[j] * scale);
      } else {
        tile[tile_index(c, i1, col)] = v[j];
      }
    }
  }
};

template <class T>
__global__ void __launch_bounds__(kColThreads) fwht_cols_kernel(ColArgs a, ColConfig c) {
  using A = typename Col<T>::A;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  A* tile = reinterpret_cast<A*>(smem_raw);
  const int64_t units = int64_t(1) << log_units(c);
  for (int k = 0; k < c.rounds; ++k) {
    if (k > 0) __syncthreads();
    for (int64_t u = threadIdx.x; u < units; u += blockDim.x) Col<T>::unit(a, c, blockIdx.x, k, u, tile);
  }
}

// ---- the plan: which kernels, in which order (shared by the device and the host emulation) -----
template <class In, class Out, int L>
constexpr bool row_instantiable() {  // configurations no device could run are not compiled
  using A = typename In::Acc;
  return row_config(L, int(sizeof(typename In::Bits)), int(sizeof(A))).smem_bytes <= kMaxDeviceSmem &&
         (std::is_same<In, Out>::value || L >= kMinPassALogN);
}

template <class In, class Out, class Exec, int L = 0>
cudaError_t dispatch_rows(int log_n, const RowArgs& a, Exec& ex) {
  if constexpr (L > kMaxRowLogN) {
    return cudaErrorInvalidValue;
  } else {
    if (log_n == L) {
      if constexpr (row_instantiable<In, Out, L>()) return ex.template rows<In, Out, L>(a);
      return cudaErrorInvalidValue;
    }
    return dispatch_rows<In, Out, Exec, L + 1>(log_n, a, ex);
  }
}

template <class T, class Exec>
cudaError_t run_plan(const FwhtCudaParams& p, void* workspace, Exec& ex) {
  using A = typename T::Acc;
  using B = typename T::Bits;
  const int log_n = ilog2(p.n);
  const int eb = int(sizeof(B)), ab = int(sizeof(A));
  const auto aligned = [](const void* ptr, int64_t bytes) {
    return reinterpret_cast<uintptr_t>(ptr) % kVecBytes == 0 && bytes % kVecBytes == 0;
  };
  const bool x_vec = aligned(p.x, (p.rows > 1 ? p.x_row_stride : 0) * eb);
  const bool y_vec = aligned(p.y, (p.rows > 1 ? p.y_row_stride : 0) * eb);
  const int l2 = max_row_log_n(eb, ab, p.max_smem_bytes);
  if (log_n <= l2) {
    const RowArgs a{p.x, p.y, p.rows, 0, p.x_row_stride, p.y_row_stride, p.d_in, p.d_out, p.scale, x_vec, y_vec};
    return dispatch_rows<T, T>(log_n, a, ex);
  }
  const int l1 = log_n - l2;
  const int smem = cap_smem(p.max_smem_bytes);
  const ColConfig cc = col_config(l1, l2, ab, smem);
  if (l1 > kMaxColLogN || l2 < kMinPassALogN || cc.smem_bytes > smem || workspace == nullptr)
    return cudaErrorInvalidValue;
  const int64_t chunk = std::max<int64_t>(1, chunk_bytes() / (p.n * ab));
  for (int64_t r0 = 0; r0 < p.rows; r0 += chunk) {
    const int64_t rows = std::min(chunk, p.rows - r0);
    // pass A: the bits of i2, x -> workspace (accumulator type, unscaled, every element)
    const bool seg_vec = ((int64_t(1) << l2) * eb) % kVecBytes == 0;  // segments start 16-byte aligned
    const RowArgs a{static_cast<const B*>(p.x) + r0 * p.x_row_stride, workspace, rows << l1, l1, p.x_row_stride,
                    p.n, p.d_in, p.n, 1.0, x_vec && seg_vec, true};
    cudaError_t err = dispatch_rows<T, typename AccElem<A>::type>(l2, a, ex);
    if (err != cudaSuccess) return err;
    // pass B: the bits of i1, workspace -> y (scaled, columns >= d_out dropped)
    const ColArgs ca{workspace, static_cast<B*>(p.y) + r0 * p.y_row_stride, rows, p.y_row_stride, p.d_out, p.scale};
    err = ex.template cols<T>(ca, cc, rows << (l2 - cc.log_c));
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

bool valid(const FwhtCudaParams& p) {
  return p.n >= 1 && (p.n & (p.n - 1)) == 0 && p.d_in >= 0 && p.d_in <= p.n && p.d_out >= 1 && p.d_out <= p.n &&
         p.rows >= 0 && p.x_row_stride >= 0 && p.y_row_stride >= 0 && int(p.dtype) >= 0 && int(p.dtype) <= 3;
}

template <class Exec>
cudaError_t run_any(const FwhtCudaParams& p, void* workspace, Exec& ex) {
  if (!valid(p)) return cudaErrorInvalidValue;
  if (p.rows == 0) return cudaSuccess;
  switch (p.dtype) {
    case DType::kFloat32: return run_plan<F32>(p, workspace, ex);
    case DType::kFloat64: return run_plan<F64>(p, workspace, ex);
    case DType::kFloat16: return run_plan<F16>(p, workspace, ex);
    case DType::kBFloat16: return run_plan<BF16>(p, workspace, ex);
  }
  return cudaErrorInvalidValue;
}

int elem_bytes(DType t) { return t == DType::kFloat64 ? 8 : t == DType::kFloat32 ? 4 : 2; }
int acc_bytes(DType t) { return t == DType::kFloat64 ? 8 : 4; }

// ---- device execution --------------------------------------------------------------------------
// The maximum dynamic shared memory is an attribute of the kernel (per device), not of a launch.
// Setting it to each launch's own size would let a small launch on one host thread lower it just
// before another thread's large launch of the same kernel, which then fails. So it is only ever
// raised, under a lock, and remembered per (kernel, device): after the first large launch of a
// kernel on a device no further call is made.
cudaError_t raise_max_dynamic_smem(const void* kernel, int bytes) {
  if (bytes <= 48 * 1024) return cudaSuccess;  // the default carve-out needs no opt-in
  int device = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err != cudaSuccess) return err;
  static std::mutex mu;
  static std::map<std::pair<const void*, int>, int> set_to;
  std::lock_guard<std::mutex> lock(mu);
  int& cur = set_to[{kernel, device}];
  if (cur >= bytes) return cudaSuccess;
  err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  if (err == cudaSuccess) cur = bytes;
  return err;
}

struct DeviceExec {
  cudaStream_t stream;

  template <class In, class Out, int L>
  cudaError_t rows(const RowArgs& a) {
    constexpr RowConfig c = Row<In, Out, L>::cfg();
    const int64_t blocks = (a.segments + c.rows_per_block - 1) / c.rows_per_block;
    if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
    const auto kernel = fwht_rows_kernel<In, Out, L>;
    const cudaError_t err = raise_max_dynamic_smem(reinterpret_cast<const void*>(kernel), c.smem_bytes);
    if (err != cudaSuccess) return err;
    kernel<<<unsigned(blocks), c.threads, c.smem_bytes, stream>>>(a);
    return cudaGetLastError();
  }

  template <class T>
  cudaError_t cols(const ColArgs& a, const ColConfig& c, int64_t blocks) {
    if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
    const auto kernel = fwht_cols_kernel<T>;
    const cudaError_t err = raise_max_dynamic_smem(reinterpret_cast<const void*>(kernel), c.smem_bytes);
    if (err != cudaSuccess) return err;
    kernel<<<unsigned(blocks), c.threads, c.smem_bytes, stream>>>(a, c);
    return cudaGetLastError();
  }
};

// ---- host emulation (tests only) ---------------------------------------------------------------
#ifdef ZEROFWHT_CUDA_EMULATE
struct HostExec {
  template <class In, class Out, int L>
  cudaError_t rows(const RowArgs& a) {
    using R = Row<In, Out, L>;
    using A = typename R::A;
    constexpr RowConfig c = R::cfg();
    const int64_t blocks = (a.segments + c.rows_per_block - 1) / c.rows_per_block;
    std::vector<A> regs(size_t(c.threads) * R::E), snap;
    std::vector<typename R::Where> where(c.threads);
    std::vector<A> smem(size_t(c.rows_per_block) * R::N);
    const auto reg = [&](int t) -> A(&)[R::E] { return *reinterpret_cast<A(*)[R::E]>(&regs[size_t(t) * R::E]); };
    for (int64_t blk = 0; blk < blocks; ++blk) {
      for (int t = 0; t < c.threads; ++t) {
        const int tr = t & ((1 << R::kLogTpr) - 1);
        where[t] = R::locate(a, blk, t);
        R::load(a, where[t], tr, reg(t));
        R::thread_stages(reg(t));
      }
      for (int b = 0; b < c.log_lanes; ++b) {  // __shfl_xor_sync: every lane reads the old values
        snap = regs;
        for (int t = 0; t < c.threads; ++t) {
          A o[R::E];
          const int partner = t ^ (1 << b);  // the same warp: 2^b < 32
          for (int j = 0; j < R::E; ++j) o[j] = snap[size_t(partner) * R::E + j];
          R::lane_combine(reg(t), o, t & ((1 << R::kLogTpr) - 1), b);
        }
      }
      if constexpr (R::W > 1) {
        std::fill(smem.begin(), smem.end(), A(-12345.0));  // poison: an unwritten slot shows
        for (int t = 0; t < c.threads; ++t)
          R::smem_store(smem.data() + size_t(t >> R::kLogTpr) * R::N, t & ((1 << R::kLogTpr) - 1), reg(t));
        for (int t = 0; t < c.threads; ++t) {  // __syncthreads()
          const int tr = t & ((1 << R::kLogTpr) - 1);
          R::smem_load(smem.data() + size_t(t >> R::kLogTpr) * R::N, tr, reg(t));
          R::warp_stages(reg(t));
          R::store_b(a, where[t], tr, reg(t));
        }
      } else {
        for (int t = 0; t < c.threads; ++t) R::store_a(a, where[t], t & ((1 << R::kLogTpr) - 1), reg(t));
      }
    }
    return cudaSuccess;
  }

  template <class T>
  cudaError_t cols(const ColArgs& a, const ColConfig& c, int64_t blocks) {
    using A = typename Col<T>::A;
    if (Col<T>::kLogSlots != c.log_slots) return cudaErrorInvalidValue;
    std::vector<A> tile(c.smem_bytes / sizeof(A) + 1);
    const int64_t units = int64_t(1) << log_units(c);
    for (int64_t blk = 0; blk < blocks; ++blk) {
      std::fill(tile.begin(), tile.end(), A(-12345.0));
      for (int k = 0; k < c.rounds; ++k)  // a barrier between rounds; units of a round are disjoint
        for (int64_t u = 0; u < units; ++u) Col<T>::unit(a, c, blk, k, u, tile.data());
    }
    return cudaSuccess;
  }
};

// Worst bank conflict of one warp-wide shared-memory access: `addr[l]` bytes, `width` bytes per lane
// (the warp is served in 128-byte wavefronts: 32 / (width / 4) lanes each).
int ways(const int64_t* addr, int width) {
  const int lanes_per_wave = 128 / std::max(width, 4);
  int worst = 1;
  for (int l0 = 0; l0 < 32; l0 += lanes_per_wave) {
    std::vector<std::vector<int64_t>> bank(32);
    for (int l = l0; l < l0 + lanes_per_wave; ++l)
      for (int w = 0; w < std::max(width, 4) / 4; ++w) {
        const int64_t word = addr[l] / 4 + w;
        auto& b = bank[word % 32];
        if (std::find(b.begin(), b.end(), word) == b.end()) b.push_back(word);
      }
    for (auto& b : bank) worst = std::max(worst, int(b.size()));
  }
  return worst;
}

template <class T, int L>
BankReport row_banks() {
  using R = Row<T, T, L>;
  using A = typename R::A;
  BankReport rep{1, 1, 1};
  if constexpr (R::W > 1) {
    int64_t addr[32];
    for (int j = 0; j < R::E; j += R::VA) {  // smem_store: one 16-byte access per chunk
      for (int l = 0; l < 32; ++l) addr[l] = int64_t(smem_index(R::cfg(), sizeof(A), index_a(R::cfg(), l, j))) * sizeof(A);
      rep.row_store = std::max(rep.row_store, ways(addr, kVecBytes));
    }
    constexpr int P = R::K < R::VA ? R::K : R::VA;
    for (int slot = 0; slot < R::E; slot += P) {  // smem_load
      for (int l = 0; l < 32; ++l) addr[l] = int64_t(smem_index(R::cfg(), sizeof(A), index_b(R::cfg(), l, slot))) * sizeof(A);
      rep.row_load = std::max(rep.row_load, ways(addr, P * int(sizeof(A))));
    }
  }
  return rep;
}

template <class T, int L = 0>
BankReport row_banks_dispatch(int log_n) {
  if constexpr (L > kMaxRowLogN) {
    return BankReport{-1, -1, -1};
  } else {
    if (log_n == L) {
      if constexpr (row_instantiable<T, T, L>()) return row_banks<T, L>();
      return BankReport{-1, -1, -1};
    }
    return row_banks_dispatch<T, L + 1>(log_n);
  }
}
#endif

}  // namespace

int max_log_n(DType dtype, int max_smem_bytes) {
  return zerofwht::cuda::max_log_n(elem_bytes(dtype), acc_bytes(dtype), max_smem_bytes);
}

int64_t workspace_bytes(const FwhtCudaParams& p) {
  if (!valid(p) || p.rows == 0) return 0;
  const int log_n = ilog2(p.n);
  if (log_n <= max_row_log_n(elem_bytes(p.dtype), acc_bytes(p.dtype), p.max_smem_bytes)) return 0;
  const int64_t row_bytes = p.n * acc_bytes(p.dtype);
  const int64_t chunk = std::max<int64_t>(1, chunk_bytes() / row_bytes);
  return std::min(chunk, p.rows) * row_bytes;
}

cudaError_t launch_fwht(const FwhtCudaParams& p, void* workspace, cudaStream_t stream) {
  DeviceExec ex{stream};
  return run_any(p, workspace, ex);
}

#ifdef ZEROFWHT_CUDA_EMULATE
void set_emulate_chunk_bytes(int64_t bytes) { g_chunk_bytes_override = bytes; }

bool emulate_fwht(const FwhtCudaParams& p, void* workspace) {
  HostExec ex;
  return run_any(p, workspace, ex) == cudaSuccess;
}

BankReport bank_conflicts_row(int log_n, DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return row_banks_dispatch<F32>(log_n);
    case DType::kFloat64: return row_banks_dispatch<F64>(log_n);
    case DType::kFloat16: return row_banks_dispatch<F16>(log_n);
    default: return row_banks_dispatch<BF16>(log_n);
  }
}

int bank_conflicts_col(int log_n1, int log_n2, DType dtype) {
  const int ab = acc_bytes(dtype);
  const ColConfig c = col_config(log_n1, log_n2, ab, kMaxDeviceSmem);
  if (c.rounds == 1) return 1;  // no shared memory
  int worst = 1;
  int64_t addr[32];
  for (int k = 0; k < c.rounds; ++k)
    for (int j = 0; j < (1 << c.log_slots); ++j) {
      bool all = true;
      for (int l = 0; l < 32; ++l) {
        int i1 = 0, col = 0;
        all = all && col_position(c, k, l, j, &i1, &col);
        addr[l] = int64_t(tile_index(c, i1, col)) * ab;
      }
      if (all) worst = std::max(worst, ways(addr, ab));
    }
  return worst;
}
#endif

}  // namespace cuda
}  // namespace zerofwht
