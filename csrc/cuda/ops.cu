// ATen glue of the CUDA kernels: the ONE CUDA glue file (argument checks, device guard, current
// stream, layouts, workspace, launch check). Every Tensor operation of the CUDA path is here; the
// kernels (fwht.cu, init_fill.cu) never see torch. One section per op family, one
// TORCH_LIBRARY_IMPL block at the end.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "cuda/fwht.cuh"
#include "cuda/init_fill.cuh"
#include "init_glue_common.h"
#include "fwht_glue_common.h"

namespace zerofwht {
namespace {

inline void check_launch(const char* op, cudaError_t err) {
  TORCH_CHECK(err == cudaSuccess, op, ": CUDA kernel launch failed: ", cudaGetErrorString(err));
}

// ---- zerofwht::init_fill_ (fused weight materialization) ----------------------------------------
void init_fill_cuda(at::Tensor w, int64_t kind, double value, int64_t tap_mode, at::IntArrayRef offset,
                    at::IntArrayRef full_shape) {
  const char* op = "zerofwht::init_fill_";
  TORCH_CHECK(w.is_cuda(), op, ": w must be a CUDA tensor, got one on ", w.device());
  const init::InitParams p = prepare_init(op, w, kind, value, tap_mode, offset, full_shape);
  const c10::cuda::CUDAGuard guard(w.device());
  check_launch(op, init::cuda::launch_init_fill(p, at::cuda::getCurrentCUDAStream()));
}

// ---- zerofwht::fwht, fwht_out, fwht_inplace (the CUDA transform) ------------------------------
// The kernel takes rows at one uniform stride with contiguous elements (uniform_rows, in
// fwht_glue_common.h).

int device_max_smem(const at::Tensor& t) {
  return static_cast<int>(at::cuda::getDeviceProperties(t.device().index())->sharedMemPerBlockOptin);
}

void check_length(const char* op, const at::Tensor& x, int64_t n) {
  const int max_log = cuda::max_log_n(kernel_dtype(x.scalar_type()), device_max_smem(x));
  TORCH_CHECK_VALUE(n <= (int64_t(1) << max_log), op, ": n=", n, " is longer than the CUDA kernel takes for ",
                    x.scalar_type(), " on this device (n <= 2^", max_log, "); use backend='triton' or 'torch'");
}

// x -> y (y's layout already checked to have uniform rows and not to overlap x unless equal).
void run_fwht(const char* op, const at::Tensor& x_in, int64_t n, int64_t out_features, double scale,
              const at::Tensor& y) {
  const int64_t rows = x_in.numel() == 0 && x_in.size(-1) == 0
                           ? y.numel() / out_features  // an empty last dimension: rows from y
                           : x_in.numel() / std::max<int64_t>(x_in.size(-1), 1);
  if (rows == 0) return;
  int64_t xs = 0, ys = 0;
  const at::Tensor x = uniform_rows(x_in, &xs) ? x_in : x_in.contiguous();
  if (!x.is_same(x_in)) TORCH_INTERNAL_ASSERT(uniform_rows(x, &xs));
  TORCH_INTERNAL_ASSERT(uniform_rows(y, &ys));
  const c10::cuda::CUDAGuard guard(x.device());
  cuda::FwhtCudaParams p{};
  p.x = x.data_ptr();
  p.y = y.data_ptr();
  p.dtype = kernel_dtype(x.scalar_type());
  p.rows = rows;
  p.x_row_stride = rows > 1 ? xs : 0;
  p.y_row_stride = rows > 1 ? ys : 0;
  p.d_in = x.size(-1);
  p.n = n;
  p.d_out = out_features;
  p.scale = scale;
  p.max_smem_bytes = device_max_smem(x);
  const int64_t ws_bytes = cuda::workspace_bytes(p);
  at::Tensor ws;  // multi-pass only; the caching allocator ties it to the current stream
  if (ws_bytes > 0) ws = at::empty({ws_bytes}, x.options().dtype(at::kByte));
  check_launch(op, cuda::launch_fwht(p, ws_bytes > 0 ? ws.data_ptr() : nullptr, at::cuda::getCurrentCUDAStream()));
}

at::Tensor fwht_cuda(const at::Tensor& x, int64_t n, int64_t out_features, double scale) {
  const char* op = "zerofwht::fwht";
  check_args(op, x, n, out_features);
  TORCH_CHECK(x.is_cuda(), op, ": x must be a CUDA tensor, got one on ", x.device());
  check_length(op, x, n);
  at::DimVector shape(x.sizes());
  shape.back() = out_features;
  at::Tensor y = at::empty(shape, x.options());
  run_fwht(op, x, n, out_features, scale, y);
  return y;
}

void fwht_out_cuda(const at::Tensor& x, int64_t n, int64_t out_features, double scale, at::Tensor out) {
  const char* op = "zerofwht::fwht_out";
  check_args(op, x, n, out_features);
  check_out(op, x, out_features, out);
  TORCH_CHECK(x.is_cuda(), op, ": x must be a CUDA tensor, got one on ", x.device());
  check_length(op, x, n);
  int64_t stride = 0;
  if (uniform_rows(out, &stride) && may_write_directly(x, n, out_features, out)) {
    run_fwht(op, x, n, out_features, scale, out);
  } else {  // a layout the kernel cannot write, or a partial overlap with x: via a temporary
    out.copy_(fwht_cuda(x, n, out_features, scale));
  }
}

void fwht_inplace_cuda(at::Tensor x, double scale) {
  const int64_t n = x.size(-1);
  check_args("zerofwht::fwht_inplace", x, n, n);
  fwht_out_cuda(x, n, n, scale, x);
}

}  // namespace

TORCH_LIBRARY_IMPL(zerofwht, CUDA, m) {
  m.impl("fwht", &fwht_cuda);
  m.impl("fwht_out", &fwht_out_cuda);
  m.impl("fwht_inplace", &fwht_inplace_cuda);
  m.impl("init_fill_", &init_fill_cuda);
}

}  // namespace zerofwht

// =================================================================================================
// zerofwht::fwht_kron: y = scale * ((H_K kron H_M) pad_n(x))[..., :out_features], n = K * M.
// Kernel: kron.cu (one block per row, the row in shared memory); checks shared with the CPU glue.
// =================================================================================================
#include "cuda/kron.cuh"
#include "kron_glue_common.h"

namespace zerofwht {
namespace {

at::Tensor fwht_kron_cuda(const at::Tensor& x_in, const at::Tensor& base_in, int64_t n, int64_t out_features,
                          double scale) {
  const char* op = "zerofwht::fwht_kron";
  const int64_t K = check_kron_args(op, x_in, base_in, n, out_features);
  TORCH_CHECK(x_in.is_cuda(), op, ": x must be a CUDA tensor here, got one on ", x_in.device());
  const int smem = device_max_smem(x_in);
  const int64_t max_n = cuda::kron_max_n(kernel_dtype(x_in.scalar_type()), smem);
  TORCH_CHECK_VALUE(n <= max_n, op, ": n=", n, " is longer than the CUDA kernel takes for ", x_in.scalar_type(),
                    " on this device (n <= ", max_n, ": one row must fit in shared memory); use backend='triton' "
                    "or 'torch'");
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor base = base_in.contiguous();
  at::DimVector shape(x_in.sizes());
  shape.back() = out_features;
  at::Tensor y = at::empty(shape, x_in.options());
  const int64_t rows = kron_rows(x_in);
  if (rows == 0) return y;
  int64_t xs = 0, ys = 0;
  const at::Tensor x = uniform_rows(x_in, &xs) ? x_in : x_in.contiguous();
  if (!x.is_same(x_in)) TORCH_INTERNAL_ASSERT(uniform_rows(x, &xs));
  TORCH_INTERNAL_ASSERT(uniform_rows(y, &ys));
  int log_m = 0;
  while ((int64_t(1) << log_m) < n / K) ++log_m;
  cuda::KronCudaParams p{};
  p.x = x.data_ptr();
  p.y = y.data_ptr();
  p.base = base.data_ptr<float>();
  p.dtype = kernel_dtype(x.scalar_type());
  p.rows = rows;
  p.x_row_stride = rows > 1 ? xs : 0;
  p.y_row_stride = rows > 1 ? ys : 0;
  p.d_in = x.size(-1);
  p.K = static_cast<int>(K);
  p.log_m = log_m;
  p.d_out = out_features;
  p.scale = scale;
  p.max_smem_bytes = smem;
  check_launch(op, cuda::launch_fwht_kron(p, at::cuda::getCurrentCUDAStream()));
  return y;
}

}  // namespace

TORCH_LIBRARY_IMPL(zerofwht, CUDA, m) {
  m.impl("fwht_kron", &fwht_kron_cuda);
}

}  // namespace zerofwht
