// Torch-free interface of the CUDA Walsh-Hadamard kernels (fwht.cu; launch shapes and
// index arithmetic: fwht_plan.h).
//
// For every row r:  y[r, :d_out] = scale * (H_n * pad_n(x[r, :d_in]))[:d_out]
// with fp32 accumulation for fp16 / bf16 (rounded to nearest even once, at the store), fp32 for
// fp32 and fp64 for fp64. Stages run in increasing distance as in the CPU kernel, so the fp32 and
// fp64 results equal the CPU kernel's bit for bit (no FMA can form: the butterflies are single
// additions, the scale a single multiply).
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

#include "shared/dtype.h"

namespace zerofwht {
namespace cuda {

using ::zerofwht::DType;  // shared/dtype.h: one enum for every device

struct FwhtCudaParams {
  const void* x;         // input, device memory; element k of row r at x[r * x_row_stride + k]
  void* y;               // output, device memory; may equal x (in place) with equal strides
  DType dtype;           // element type of x and y
  int64_t rows;          // number of rows (may be 0: nothing is launched)
  int64_t x_row_stride;  // elements between rows of x (any value >= 0)
  int64_t y_row_stride;  // elements between rows of y (rows of y must not overlap)
  int64_t d_in;          // elements read per row, 0 <= d_in <= n; the rest of the row is zero
  int64_t n;             // transform length, a power of two, 1 <= n <= 2^max_log_n()
  int64_t d_out;         // elements written per row, 1 <= d_out <= n
  double scale;          // multiplies every output (in the accumulator type, at the store)
  int max_smem_bytes;    // the device's opt-in shared memory per block (cudaDevAttrMaxSharedMemoryPerBlockOptin)
};

// Longest transform (log2 n) the kernels take for this dtype on a device with max_smem_bytes.
int max_log_n(DType dtype, int max_smem_bytes);

// Bytes of device workspace launch_fwht() needs (0 for single-pass lengths): the caller allocates
// it (256-byte aligned) and keeps it alive until the work on `stream` is done.
int64_t workspace_bytes(const FwhtCudaParams& p);

// Launches the transform on `stream`; returns the first launch error (cudaSuccess when none),
// or cudaErrorInvalidValue for arguments outside the contract above.
cudaError_t launch_fwht(const FwhtCudaParams& p, void* workspace, cudaStream_t stream);

#ifdef ZEROFWHT_CUDA_EMULATE
// Tests only (tests/fwht_cuda_emulate.cu): the same plan and the same kernel bodies, every thread
// of every block run on the host, shuffles and shared memory emulated; x, y, workspace in host
// memory. Returns false for arguments launch_fwht() would refuse.
bool emulate_fwht(const FwhtCudaParams& p, void* workspace);

// Tests only: the worst shared-memory bank conflict (ways; 1 = conflict-free) of the row kernel's
// phase-A store and phase-B load, and of the column kernel's tile accesses, for one shape.
struct BankReport {
  int row_store, row_load, col_access;
};
BankReport bank_conflicts_row(int log_n, DType dtype);
int bank_conflicts_col(int log_n1, int log_n2, DType dtype);
#endif

}  // namespace cuda
}  // namespace zerofwht
