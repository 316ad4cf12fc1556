// Torch-free interface of the CUDA kernel of the Kronecker-structured Hadamard transform (kron.cu):
//     y[r, :d_out] = scale * ((H_K kron H_M) pad_n(x[r, :d_in]))[:d_out],   n = K * M, M = 2^k,
// x's row viewed as a K x M matrix X (K the slow index) giving H_K . X . H_M. One block per row:
// the row is loaded into shared memory (accumulator type: fp32 for fp16 / bf16 / fp32, fp64 for
// fp64), its K sub-rows go through the power-of-two stages (increasing distance, as the CPU kernel),
// then each output is the dot product of a base row with a column of the K x M matrix, times the
// scale, rounded once at the store. The base values are used as multipliers (the contract says
// +1 / -1; with such entries every product is exact).
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

#include "cuda/fwht.cuh"  // DType

namespace zerofwht {
namespace cuda {

struct KronCudaParams {
  const void* x;         // input, device memory; element j of row r at x[r * x_row_stride + j]
  void* y;               // output, device memory; must not overlap x
  const float* base;     // K x K row-major, device memory
  DType dtype;           // element type of x and y
  int64_t rows;          // number of rows (0: nothing is launched)
  int64_t x_row_stride;  // elements between rows of x (>= 0)
  int64_t y_row_stride;  // elements between rows of y
  int64_t d_in;          // elements read per row, 0 <= d_in <= n; the rest is zero
  int K;                 // order of the base, >= 1
  int log_m;             // M = 2^log_m
  int64_t d_out;         // elements written per row, 1 <= d_out <= n
  double scale;          // multiplies every output (in the accumulator type, at the store)
  int max_smem_bytes;    // the device's opt-in shared memory per block
};

// Longest n = K * M the kernel takes for this dtype on a device with max_smem_bytes (the whole
// row lives in shared memory).
int64_t kron_max_n(DType dtype, int max_smem_bytes);

// Launches on `stream`; cudaErrorInvalidValue for arguments outside the contract above (n too
// long included), else the first launch error.
cudaError_t launch_fwht_kron(const KronCudaParams& p, cudaStream_t stream);

#ifdef ZEROFWHT_CUDA_EMULATE
// Tests only: the same kernel body, every thread of every block run on the host (x, y, base in
// host memory). Returns false where launch_fwht_kron would refuse.
bool emulate_fwht_kron(const KronCudaParams& p);
#endif

}  // namespace cuda
}  // namespace zerofwht
