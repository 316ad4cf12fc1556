// Argument checks shared by the device glue files (CPU now, CUDA later). Messages name the
// argument and its value, as the Python front end does.
#pragma once

#include <ATen/ATen.h>
#include <ATen/MemoryOverlap.h>

namespace zerofwht {

inline bool is_power_of_two(int64_t n) { return n >= 1 && (n & (n - 1)) == 0; }

inline void check_args(const char* op, const at::Tensor& x, int64_t n, int64_t out_features) {
  const auto t = x.scalar_type();
  TORCH_CHECK_TYPE(t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16, op,
                   ": x must be a floating tensor (float16, bfloat16, float32 or float64), got dtype=", t);
  TORCH_CHECK_VALUE(x.dim() >= 1, op, ": x must have at least 1 dimension, got a 0-d tensor");
  TORCH_CHECK_VALUE(is_power_of_two(n) && n >= x.size(-1), op,
                    ": n must be a power of two >= x.shape[-1]=", x.size(-1), ", got n=", n);
  TORCH_CHECK_VALUE(n <= (int64_t(1) << 40), op, ": n=", n, " is too large");
  TORCH_CHECK_VALUE(out_features >= 1 && out_features <= n, op, ": out_features must be in [1, n=", n,
                    "], got out_features=", out_features);
}

inline void check_out(const char* op, const at::Tensor& x, int64_t out_features, const at::Tensor& out) {
  at::DimVector shape(x.sizes());
  shape.back() = out_features;
  TORCH_CHECK_VALUE(out.sizes() == at::IntArrayRef(shape), op, ": out has shape ", out.sizes(), ", expected ",
                    at::IntArrayRef(shape));
  TORCH_CHECK_TYPE(out.scalar_type() == x.scalar_type(), op, ": out has dtype ", out.scalar_type(),
                   ", expected x's dtype ", x.scalar_type());
  TORCH_CHECK(out.device() == x.device(), op, ": out is on ", out.device(), " but x is on ", x.device());
  TORCH_CHECK(at::has_internal_overlap(out) != at::MemOverlap::Yes || out.numel() == 0, op,
              ": out has internal overlap (e.g. an expanded tensor); it cannot be written");
}

// Whether the kernel may write `out` directly (its layout permitting): out does not overlap x, or
// out IS x (same memory, same strides) in a square transform, which runs in place. Any other
// overlap goes through a temporary.
inline bool may_write_directly(const at::Tensor& x, int64_t n, int64_t out_features, const at::Tensor& out) {
  const auto overlap = at::get_overlap_status(out, x);
  const bool exact_alias = overlap == at::MemOverlapStatus::Full && out.strides() == x.strides() &&
                           x.size(-1) == n && out_features == n;
  return overlap == at::MemOverlapStatus::No || exact_alias;
}

}  // namespace zerofwht
