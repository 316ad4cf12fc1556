// CUDA kernel of the Kronecker-structured Hadamard transform (torch-free; interface kron.cuh).
//
// One block per row, the whole row in shared memory (n accumulator elements):
//   1. load: x's row (zero past d_in) into shared memory, element j by thread j mod blockDim
//      (coalesced);
//   2. power-of-two stages on the K sub-rows at once: passes of up to 4 stages, each thread taking
//      groups of 2^R elements h apart (h = the pass's first distance); a group never crosses a
//      sub-row because M is a multiple of h * 2^R;
//   3. the K x K stage: thread items are (tile of 4 output rows, column c), c fastest (coalesced
//      stores, conflict-free shared-memory loads); each keeps 4 accumulators over the K sub-rows.
// Each step is a __host__ __device__ function of one thread; the __global__ function strings them
// together with barriers, and the host emulation (ZEROFWHT_CUDA_EMULATE) strings the same steps
// together for every thread of a block, so the tests on the host check the device code.
#include <algorithm>
#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda/kron.cuh"
#include "shared/host_device.h"

#ifdef ZEROFWHT_CUDA_EMULATE
#include <vector>
#endif

namespace zerofwht {
namespace cuda {
namespace {

constexpr int kKronMaxThreads = 512;
constexpr int kKronRadix = 4;     // stages per shared-memory pass, at most
constexpr int kKronRowTile = 4;   // output rows per thread item in the K x K stage

struct KF32 {
  using Bits = float;
  using Acc = float;
  static ZF_HD float to_acc(float b) { return b; }
  static ZF_HD float from_acc(float a) { return a; }
};
struct KF64 {
  using Bits = double;
  using Acc = double;
  static ZF_HD double to_acc(double b) { return b; }
  static ZF_HD double from_acc(double a) { return a; }
};
struct KF16 {  // raw bits in memory; conversions round to nearest even
  using Bits = uint16_t;
  using Acc = float;
  static ZF_HD float to_acc(uint16_t b) {
    __half_raw r;
    r.x = b;
    return __half2float(__half(r));
  }
  static ZF_HD uint16_t from_acc(float a) { return __half_raw(__float2half_rn(a)).x; }
};
struct KBF16 {
  using Bits = uint16_t;
  using Acc = float;
  static ZF_HD float to_acc(uint16_t b) {
    __nv_bfloat16_raw r;
    r.x = b;
    return __bfloat162float(__nv_bfloat16(r));
  }
  static ZF_HD uint16_t from_acc(float a) { return __nv_bfloat16_raw(__float2bfloat16_rn(a)).x; }
};

struct KronArgs {
  const void* x;
  void* y;
  const float* base;
  int64_t x_row_stride, y_row_stride, d_in, d_out;
  int K, log_m, n;  // n = K << log_m (fits: it is bounded by shared memory)
  double scale;
  bool base_vec;     // base rows are 16-byte aligned (K % 4 == 0, aligned pointer): float4 loads
};

template <class T>
struct KronRow {
  using A = typename T::Acc;
  using B = typename T::Bits;

  // Step 1: elements t, t + threads, ... of row `row` into s.
  static ZF_HD void load(const KronArgs& a, int64_t row, int t, int threads, A* s) {
    const B* x = static_cast<const B*>(a.x) + row * a.x_row_stride;
    for (int j = t; j < a.n; j += threads) s[j] = j < a.d_in ? T::to_acc(x[j]) : A(0);
  }

  // Step 2, one pass: the R stages of distance 2^lh ... 2^(lh + R - 1) on groups of 2^R elements.
  template <int R>
  static ZF_HD void pass(const KronArgs& a, int lh, int t, int threads, A* s) {
    constexpr int G = 1 << R;
    const int groups = a.n >> R;
    for (int g = t; g < groups; g += threads) {
      const int lo = g & ((1 << lh) - 1), hi = g >> lh;
      const int b = (hi << (lh + R)) | lo;
      A v[G];
#pragma unroll
      for (int j = 0; j < G; ++j) v[j] = s[b + (j << lh)];
#pragma unroll
      for (int d = 1; d < G; d <<= 1)
#pragma unroll
        for (int j = 0; j < G; ++j)
          if (!(j & d)) {
            const A u = v[j], w = v[j | d];
            v[j] = u + w;
            v[j | d] = u - w;
          }
#pragma unroll
      for (int j = 0; j < G; ++j) s[b + (j << lh)] = v[j];
    }
  }
  static ZF_HD void pass_r(const KronArgs& a, int r, int lh, int t, int threads, A* s) {
    switch (r) {
      case 1: pass<1>(a, lh, t, threads, s); break;
      case 2: pass<2>(a, lh, t, threads, s); break;
      case 3: pass<3>(a, lh, t, threads, s); break;
      default: pass<4>(a, lh, t, threads, s); break;
    }
  }
  // Stages of pass k of `passes` (balanced: the passes' sizes differ by at most one).
  static ZF_HD int pass_bits(int log_m, int passes, int k) { return (log_m + k) / passes; }

  // Step 3: output rows 4*tile ... of column c, for items t, t + threads, ...
  static ZF_HD void kstage(const KronArgs& a, int64_t row, int t, int threads, const A* s) {
    const int M = 1 << a.log_m;
    const int64_t rows_out = (a.d_out + M - 1) >> a.log_m;
    const int tiles = int((rows_out + kKronRowTile - 1) / kKronRowTile);
    B* y = static_cast<B*>(a.y) + row * a.y_row_stride;
    const A scale = A(a.scale);
    for (int item = t; item < tiles * M; item += threads) {
      const int c = item & (M - 1), r0 = (item >> a.log_m) * kKronRowTile;
      const float* h[kKronRowTile];
#pragma unroll
      for (int q = 0; q < kKronRowTile; ++q) h[q] = a.base + int64_t(r0 + q < a.K ? r0 + q : a.K - 1) * a.K;
      A acc[kKronRowTile];
#pragma unroll
      for (int q = 0; q < kKronRowTile; ++q) acc[q] = A(0);
      int i = 0;
      if (a.base_vec) {  // four base entries per load (rows 16-byte aligned: K % 4 == 0)
        for (; i < a.K; i += 4) {
          A v[4];
#pragma unroll
          for (int u = 0; u < 4; ++u) v[u] = s[((i + u) << a.log_m) + c];
#pragma unroll
          for (int q = 0; q < kKronRowTile; ++q) {
            const float4 b = *reinterpret_cast<const float4*>(h[q] + i);
            acc[q] += A(b.x) * v[0];
            acc[q] += A(b.y) * v[1];
            acc[q] += A(b.z) * v[2];
            acc[q] += A(b.w) * v[3];
          }
        }
      }
      for (; i < a.K; ++i) {
        const A v = s[(i << a.log_m) + c];
#pragma unroll
        for (int q = 0; q < kKronRowTile; ++q) acc[q] += A(h[q][i]) * v;
      }
#pragma unroll
      for (int q = 0; q < kKronRowTile; ++q) {
        const int64_t e = (int64_t(r0 + q) << a.log_m) + c;
        if (r0 + q < a.K && e < a.d_out) y[e] = T::from_acc(acc[q] * scale);
      }
    }
  }
};

template <class T>
__global__ void __launch_bounds__(kKronMaxThreads) fwht_kron_kernel(KronArgs a) {
  using A = typename T::Acc;
  extern __shared__ __align__(16) unsigned char kron_smem[];
  A* s = reinterpret_cast<A*>(kron_smem);
  const int t = threadIdx.x, threads = blockDim.x;
  const int64_t row = blockIdx.x;
  KronRow<T>::load(a, row, t, threads, s);
  const int passes = (a.log_m + kKronRadix - 1) / kKronRadix;
  int lh = 0;
  for (int k = 0; k < passes; ++k) {
    __syncthreads();
    const int r = KronRow<T>::pass_bits(a.log_m, passes, k);
    KronRow<T>::pass_r(a, r, lh, t, threads, s);
    lh += r;
  }
  __syncthreads();
  KronRow<T>::kstage(a, row, t, threads, s);
}

int acc_bytes_of(DType t) { return t == DType::kFloat64 ? 8 : 4; }

int threads_for(int n) {
  const int want = (n / 8 + 31) / 32 * 32;  // about 8 elements per thread, whole warps
  return std::max(32, std::min(kKronMaxThreads, want));
}

bool valid(const KronCudaParams& p) {
  if (p.K < 1 || p.log_m < 0 || p.log_m > 30 || p.rows < 0 || p.x_row_stride < 0 || p.y_row_stride < 0)
    return false;
  const int64_t n = int64_t(p.K) << p.log_m;
  return p.d_in >= 0 && p.d_in <= n && p.d_out >= 1 && p.d_out <= n && int(p.dtype) >= 0 && int(p.dtype) <= 3 &&
         n <= kron_max_n(p.dtype, p.max_smem_bytes);
}

template <class T, class Exec>
cudaError_t run_typed(const KronCudaParams& p, Exec& ex) {
  const int n = p.K << p.log_m;
  const bool base_vec = p.K % 4 == 0 && reinterpret_cast<uintptr_t>(p.base) % 16 == 0;
  const KronArgs a{p.x, p.y, p.base, p.x_row_stride, p.y_row_stride, p.d_in, p.d_out, p.K, p.log_m, n, p.scale,
                   base_vec};
  return ex.template rows<T>(a, p.rows, threads_for(n), n * int(sizeof(typename T::Acc)));
}

template <class Exec>
cudaError_t run_any(const KronCudaParams& p, Exec& ex) {
  if (!valid(p)) return cudaErrorInvalidValue;
  if (p.rows == 0) return cudaSuccess;
  switch (p.dtype) {
    case DType::kFloat32: return run_typed<KF32>(p, ex);
    case DType::kFloat64: return run_typed<KF64>(p, ex);
    case DType::kFloat16: return run_typed<KF16>(p, ex);
    case DType::kBFloat16: return run_typed<KBF16>(p, ex);
  }
  return cudaErrorInvalidValue;
}

struct KronDeviceExec {
  cudaStream_t stream;
  template <class T>
  cudaError_t rows(const KronArgs& a, int64_t rows, int threads, int smem) {
    if (rows > 0x7fffffff) return cudaErrorInvalidValue;
    const auto kernel = fwht_kron_kernel<T>;
    if (smem > 48 * 1024) {
      const cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
      if (err != cudaSuccess) return err;
    }
    kernel<<<unsigned(rows), threads, smem, stream>>>(a);
    return cudaGetLastError();
  }
};

#ifdef ZEROFWHT_CUDA_EMULATE
struct KronHostExec {
  template <class T>
  cudaError_t rows(const KronArgs& a, int64_t rows, int threads, int smem) {
    using A = typename T::Acc;
    std::vector<A> s(size_t(smem) / sizeof(A));
    for (int64_t row = 0; row < rows; ++row) {
      std::fill(s.begin(), s.end(), A(-12345.0));  // poison: a slot read before it is written shows
      for (int t = 0; t < threads; ++t) KronRow<T>::load(a, row, t, threads, s.data());
      const int passes = (a.log_m + kKronRadix - 1) / kKronRadix;
      int lh = 0;
      for (int k = 0; k < passes; ++k) {  // a barrier before each pass
        const int r = KronRow<T>::pass_bits(a.log_m, passes, k);
        for (int t = 0; t < threads; ++t) KronRow<T>::pass_r(a, r, lh, t, threads, s.data());
        lh += r;
      }
      for (int t = 0; t < threads; ++t) KronRow<T>::kstage(a, row, t, threads, s.data());
    }
    return cudaSuccess;
  }
};
#endif

}  // namespace

int64_t kron_max_n(DType dtype, int max_smem_bytes) {
  return int64_t(std::max(max_smem_bytes, 0)) / acc_bytes_of(dtype);
}

cudaError_t launch_fwht_kron(const KronCudaParams& p, cudaStream_t stream) {
  KronDeviceExec ex{stream};
  return run_any(p, ex);
}

#ifdef ZEROFWHT_CUDA_EMULATE
bool emulate_fwht_kron(const KronCudaParams& p) {
  KronHostExec ex;
  return run_any(p, ex) == cudaSuccess;
}
#endif

}  // namespace cuda
}  // namespace zerofwht
