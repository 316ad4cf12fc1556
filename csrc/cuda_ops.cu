// ATen glue of the CUDA kernels: the ONE CUDA glue file (argument checks, device guard, current
// stream, launch check). Every Tensor operation of the CUDA path is here; the kernels
// (init_cuda.cu, ...) never see torch. Sections, one per op family; the CUDA FWHT glue goes in
// its own section below the init one, registered in the same TORCH_LIBRARY_IMPL block.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "init_cuda.cuh"
#include "init_ops_common.h"

namespace zerofwht {
namespace {

inline void check_launch(const char* op, cudaError_t err) {
  TORCH_CHECK(err == cudaSuccess, op, ": CUDA kernel launch failed: ", cudaGetErrorString(err));
}

// ---- zerofwht::init_fill_ (issue 3: fused weight materialization) ----------------------------
void init_fill_cuda(at::Tensor w, int64_t kind, double value, int64_t tap_mode, at::IntArrayRef offset,
                    at::IntArrayRef full_shape) {
  const char* op = "zerofwht::init_fill_";
  TORCH_CHECK(w.is_cuda(), op, ": w must be a CUDA tensor, got one on ", w.device());
  const init::InitParams p = prepare_init(op, w, kind, value, tap_mode, offset, full_shape);
  const c10::cuda::CUDAGuard guard(w.device());
  check_launch(op, init::cuda::launch_init_fill(p, at::cuda::getCurrentCUDAStream()));
}

// ---- (CUDA FWHT glue: next section) ----------------------------------------------------------

}  // namespace

TORCH_LIBRARY_IMPL(zerofwht, CUDA, m) {
  m.impl("init_fill_", &init_fill_cuda);
}

}  // namespace zerofwht
