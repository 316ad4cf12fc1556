// CUDA kernel of zerofwht::init_fill_ (torch-free; see init_fill.cuh and shared/init_params.h).
#include <cstdint>
#include <cstring>

#include "cuda/init_fill.cuh"

namespace zerofwht {
namespace init {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kVecBytes = 16;

// Bits of the element at (row, col, tap), with the row's non-zero columns given (sparse kinds).
template <class U>
ZF_HD U bits_at(const InitParams& p, int64_t row, int64_t col, int64_t tap, int64_t plus,
                int64_t minus) {
  if (tap != p.tap_centre) return 0;
  if (p.kind == Kind::kHadamard)
    return static_cast<U>(parity64(static_cast<uint64_t>(row & col)) ? p.neg_bits : p.pos_bits);
  return static_cast<U>(col == minus ? p.neg_bits : (col == plus ? p.pos_bits : 0));
}

// row_nonzeros() with 32-bit division when the numbers allow it (the common case).
ZF_HD void nonzeros(const InitParams& p, int64_t row, int64_t* plus, int64_t* minus) {
  if (p.kind == Kind::kHadamard || p.kind == Kind::kZeros) {
    *plus = *minus = -1;
    return;
  }
  if (row < INT32_MAX && p.full_rows < INT32_MAX && p.full_cols < INT32_MAX) {
    const uint32_t r = static_cast<uint32_t>(row), R = static_cast<uint32_t>(p.full_rows),
                   C = static_cast<uint32_t>(p.full_cols);
    *minus = -1;
    switch (p.kind) {
      case Kind::kPartialIdentity: *plus = r < C ? int64_t(r) : -1; break;
      case Kind::kIdi: *plus = r % C; break;
      default:  // kIdiz
        *plus = r % C;
        *minus = R < C ? int64_t(R + r % (C - R)) : int64_t((r + 1) % C);
        break;
    }
    return;
  }
  row_nonzeros(p, row, plus, minus);
}

// The launch shape (see init_fill.cuh), the same for the device and the host emulation.
struct Launch {
  int64_t runs, run_len, run_groups;
  int bi_log2;      // log2 of the threads along a run
  int64_t grid_x;   // blocks along a run
  unsigned grid_y;  // blocks over run groups (grid-stride)
};

// sm_count: multiprocessors of the device; the grid is capped at about 32 blocks per SM along y
// (a grid-stride loop covers the rest), so a block writes several runs.
template <class U>
Launch make_launch(const InitParams& p, int sm_count) {
  constexpr int VEC = kVecBytes / sizeof(U);
  Launch l;
  l.runs = num_runs(p);
  l.run_len = run_length(p);
  const int64_t threads_per_run = (l.run_len + VEC - 1) / VEC;
  l.bi_log2 = 0;
  while ((int64_t(1) << l.bi_log2) < threads_per_run && (1 << l.bi_log2) < kThreads) ++l.bi_log2;
  const int bo = kThreads >> l.bi_log2;
  l.run_groups = (l.runs + bo - 1) / bo;
  l.grid_x = (threads_per_run + (int64_t(1) << l.bi_log2) - 1) >> l.bi_log2;
  const int64_t want_blocks = int64_t(32) * (sm_count > 0 ? sm_count : 1);
  int64_t gy = (want_blocks + l.grid_x - 1) / l.grid_x;
  gy = gy < l.run_groups ? gy : l.run_groups;
  gy = gy < 65535 ? gy : 65535;
  l.grid_y = static_cast<unsigned>(gy > 0 ? gy : 1);
  return l;
}

// What thread `tid` of block (bx, by) writes. The kernel body; the host emulation of the tests
// (tests/init_cuda_emulate.cu) runs it for every thread of the grid.
template <class U, bool kRowVaries>
ZF_HD void fill_thread(const InitParams& p, const Launch& l, int64_t bx, int64_t by, int tid) {
  constexpr int VEC = kVecBytes / sizeof(U);
  const int tx = tid & ((1 << l.bi_log2) - 1);
  const int ty = tid >> l.bi_log2;
  const int bo = kThreads >> l.bi_log2;
  const int64_t j0 = (bx * (int64_t(1) << l.bi_log2) + tx) * VEC;
  const int L = p.ndim - 1;
  const int64_t st = p.strides[L], ri = p.row_coef[L], ci = p.col_coef[L], ti = p.tap_coef[L];
  if (j0 >= l.run_len) return;
  const int n = l.run_len - j0 < VEC ? static_cast<int>(l.run_len - j0) : VEC;
  for (int64_t g = by; g < l.run_groups; g += l.grid_y) {
    const int64_t run = g * bo + ty;
    if (run >= l.runs) return;
    const RunStart s = run_start(p, run);
    const int64_t row = s.row + j0 * ri, col = s.col + j0 * ci, tap = s.tap + j0 * ti;
    int64_t plus = -1, minus = -1;
    if (!kRowVaries) nonzeros(p, row, &plus, &minus);
    U vals[VEC];
#pragma unroll
    for (int v = 0; v < VEC; ++v) {
      const int64_t r = kRowVaries ? row + v * ri : row;
      if (kRowVaries) nonzeros(p, r, &plus, &minus);
      vals[v] = bits_at<U>(p, r, col + v * ci, tap + v * ti, plus, minus);
    }
    U* dst = static_cast<U*>(p.w) + s.mem + j0 * st;
    if (st == 1 && n == VEC && (reinterpret_cast<uintptr_t>(dst) % kVecBytes) == 0) {
      uint4 packed;  // one 16-byte store
      memcpy(&packed, vals, kVecBytes);
      *reinterpret_cast<uint4*>(dst) = packed;
    } else {
#pragma unroll
      for (int v = 0; v < VEC; ++v)
        if (v < n) dst[v * st] = vals[v];
    }
  }
}

template <class U, bool kRowVaries>
__global__ void __launch_bounds__(kThreads) init_fill_kernel(const InitParams p, const Launch l) {
  fill_thread<U, kRowVaries>(p, l, blockIdx.x, blockIdx.y, threadIdx.x);
}

template <class U, bool kRowVaries>
cudaError_t launch_typed(const InitParams& p, cudaStream_t stream) {
  int device = 0, sm_count = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&sm_count, cudaDevAttrMultiProcessorCount, device);
  if (err != cudaSuccess) return err;
  const Launch l = make_launch<U>(p, sm_count);
  if (l.grid_x > INT32_MAX) return cudaErrorInvalidConfiguration;
  init_fill_kernel<U, kRowVaries>
      <<<dim3(static_cast<unsigned>(l.grid_x), l.grid_y), kThreads, 0, stream>>>(p, l);
  return cudaGetLastError();
}

template <class U>
cudaError_t launch_elem(const InitParams& p, cudaStream_t stream) {
  return p.row_coef[p.ndim - 1] != 0 ? launch_typed<U, true>(p, stream) : launch_typed<U, false>(p, stream);
}

}  // namespace

#ifdef ZEROFWHT_CUDA_EMULATE
// Host emulation of launch_init_fill for the tests: runs fill_thread for every thread of the grid
// in block order (the writes of different threads never overlap, so the order does not matter).
template <class U, bool kRowVaries>
void emulate_typed(const InitParams& p, int sm_count) {
  const Launch l = make_launch<U>(p, sm_count);
  for (int64_t by = 0; by < l.grid_y; ++by)
    for (int64_t bx = 0; bx < l.grid_x; ++bx)
      for (int tid = 0; tid < kThreads; ++tid) fill_thread<U, kRowVaries>(p, l, bx, by, tid);
}
template <class U>
void emulate_elem(const InitParams& p, int sm_count) {
  if (p.row_coef[p.ndim - 1] != 0) emulate_typed<U, true>(p, sm_count);
  else emulate_typed<U, false>(p, sm_count);
}
void emulate_init_fill(const InitParams& p, int sm_count) {
  if (p.numel == 0) return;
  switch (p.elem_bytes) {
    case 2: return emulate_elem<uint16_t>(p, sm_count);
    case 4: return emulate_elem<uint32_t>(p, sm_count);
    case 8: return emulate_elem<unsigned long long>(p, sm_count);
  }
}
#endif

cudaError_t launch_init_fill(const InitParams& p, cudaStream_t stream) {
  if (p.numel == 0) return cudaSuccess;
  switch (p.elem_bytes) {
    case 2: return launch_elem<uint16_t>(p, stream);
    case 4: return launch_elem<uint32_t>(p, stream);
    case 8: return launch_elem<unsigned long long>(p, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace cuda
}  // namespace init
}  // namespace zerofwht
