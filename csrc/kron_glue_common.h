// Argument checks of zerofwht::fwht_kron shared by the CPU and CUDA glue files (they guard the
// kernels' memory accesses): messages name the argument and its value.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#include "fwht_glue_common.h"  // uniform_rows

namespace zerofwht {

// Checks x, base, n and out_features; returns K (base is K x K, n = K * M with M a power of two).
inline int64_t check_kron_args(const char* op, const at::Tensor& x, const at::Tensor& base, int64_t n,
                               int64_t out_features) {
  const auto t = x.scalar_type();
  TORCH_CHECK_TYPE(t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16, op,
                   ": x must be a floating tensor (float16, bfloat16, float32 or float64), got dtype=", t);
  TORCH_CHECK_VALUE(x.dim() >= 1, op, ": x must have at least 1 dimension, got a 0-d tensor");
  TORCH_CHECK_VALUE(base.dim() == 2 && base.size(0) == base.size(1) && base.size(0) >= 1, op,
                    ": base must be a square K x K matrix with K >= 1, got shape ", base.sizes());
  TORCH_CHECK_TYPE(base.scalar_type() == at::kFloat, op, ": base must be float32, got dtype=", base.scalar_type());
  TORCH_CHECK(base.device() == x.device(), op, ": base is on ", base.device(), " but x is on ", x.device());
  const int64_t K = base.size(0);
  TORCH_CHECK_VALUE(n >= 1 && n % K == 0 && ((n / K) & (n / K - 1)) == 0, op,
                    ": n must be K * 2^k for the K x K base (K=", K, "), got n=", n);
  TORCH_CHECK_VALUE(n <= (int64_t(1) << 40), op, ": n=", n, " is too large");
  TORCH_CHECK_VALUE(n >= x.size(-1), op, ": n must be >= x.shape[-1]=", x.size(-1), ", got n=", n);
  TORCH_CHECK_VALUE(out_features >= 1 && out_features <= n, op, ": out_features must be in [1, n=", n,
                    "], got out_features=", out_features);
  return K;
}

// Rows of x (an empty last dimension still has rows: the product of the batch sizes).
inline int64_t kron_rows(const at::Tensor& x) {
  int64_t rows = 1;
  for (int64_t d = 0; d + 1 < x.dim(); ++d) rows *= x.size(d);
  return rows;
}

}  // namespace zerofwht
