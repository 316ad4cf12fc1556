// Torch-free CUDA kernel of zerofwht::init_fill_ (rule and layout: init_params.h).
//
// Mapping: a block of 256 threads covers BO runs x (BI * VEC) elements (BI = threads along a run,
// a power of two <= 256, BO = 256 / BI; VEC = 16 bytes / element size), grid x over the chunks of
// a run, grid y over groups of BO runs (about 32 blocks per SM in all; a grid-stride loop
// covers the remaining groups). Each thread computes VEC consecutive
// elements of one run from their logical (row, col, tap) and writes them with one 16-byte store
// when the run is contiguous and aligned (else element by element, still coalesced). The per-row
// quantities (the sparse kinds' non-zero columns) are computed once per run unless the innermost
// dimension moves the row (a transposed view). The tensor is written exactly once.
#pragma once

#include <cuda_runtime.h>

#include "shared/init_params.h"

namespace zerofwht {
namespace init {
namespace cuda {

// Launches the fill of p on `stream`; returns cudaGetLastError() after the launch.
cudaError_t launch_init_fill(const InitParams& p, cudaStream_t stream);

#ifdef ZEROFWHT_CUDA_EMULATE
// Tests only: runs the kernel body for every thread of the grid on the host (p.w in host memory),
// with the grid a device of `sm_count` multiprocessors would get.
void emulate_init_fill(const InitParams& p, int sm_count);
#endif

}  // namespace cuda
}  // namespace init
}  // namespace zerofwht
