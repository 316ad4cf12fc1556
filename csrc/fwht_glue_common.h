// ATen helpers of the transform shared by the CPU and CUDA glue (cpu/ops.cpp, cuda/ops.cu): the
// dtype mapping, the argument checks and the overlap analysis of out=.
// The user-facing checks live in the Python layer (the public functions check everything first and
// name the Python argument). These C++ checks stay because the ops are also reachable directly as
// torch.ops.zerofwht.*: each one guards the kernels' memory safety (an unsupported dtype, n not a
// power of two or shorter than a row, out_features past n, an out of the wrong shape, dtype or
// device, or one that overlaps itself would make a kernel read or write out of bounds or race).
// Messages name the argument and its value, as the Python layer does.
#pragma once

#include <ATen/ATen.h>
#include <ATen/MemoryOverlap.h>

#include <cstdint>
#include <utility>

#include "shared/dtype.h"

namespace zerofwht {

// The kernels' element type of a floating dtype (checked before: check_args).
inline DType kernel_dtype(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return DType::kFloat32;
    case at::kDouble: return DType::kFloat64;
    case at::kHalf: return DType::kFloat16;
    case at::kBFloat16: return DType::kBFloat16;
    default: TORCH_CHECK_TYPE(false, "zerofwht: unsupported dtype ", t);
  }
}

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

// The bytes [first, last] a non-empty tensor with non-negative strides can touch.
inline std::pair<uintptr_t, uintptr_t> byte_span(const at::Tensor& t) {
  int64_t last = 0;
  for (int64_t d = 0; d < t.dim(); ++d) last += (t.size(d) - 1) * t.stride(d);
  const auto first = reinterpret_cast<uintptr_t>(t.data_ptr());
  return {first, first + uintptr_t(last + 1) * t.element_size() - 1};
}

// Whether the kernel may write `out` directly (its layout permitting): out does not overlap x, or
// out IS x (same memory, same strides) in a square transform, which runs in place. Any other
// overlap goes through a temporary.
inline bool may_write_directly(const at::Tensor& x, int64_t n, int64_t out_features, const at::Tensor& out) {
  auto overlap = at::get_overlap_status(out, x);
  if (overlap == at::MemOverlapStatus::TooHard) {
    // get_overlap_status gives up on tensors that are not dense, e.g. an out= that is a slice of
    // wider rows; such an out went through a temporary and a copy (2-3x the time). Different
    // storages, or byte spans that do not meet, cannot overlap.
    const auto a = byte_span(x), b = byte_span(out);
    if (!out.storage().is_alias_of(x.storage()) || a.second < b.first || b.second < a.first)
      overlap = at::MemOverlapStatus::No;
  }
  const bool exact_alias = overlap == at::MemOverlapStatus::Full && out.strides() == x.strides() &&
                           x.size(-1) == n && out_features == n;
  return overlap == at::MemOverlapStatus::No || exact_alias;
}

// Rows at one uniform stride with contiguous elements: true (and the stride) when t's batch
// dimensions merge into one such dimension; size-1 dimensions are ignored. The CUDA kernels take
// rows in this form.
inline bool uniform_rows(const at::Tensor& t, int64_t* row_stride) {
  if (t.size(-1) > 1 && t.stride(-1) != 1) return false;
  int64_t stride = t.size(-1), inner = -1;  // inner: the stride the next (outer) dim must have
  bool first = true;
  for (int64_t d = t.dim() - 2; d >= 0; --d) {
    if (t.size(d) == 1) continue;
    if (first) {
      stride = t.stride(d);
      first = false;
    } else if (t.stride(d) != inner) {
      return false;
    }
    inner = t.stride(d) * t.size(d);
  }
  *row_stride = stride;
  return true;
}

}  // namespace zerofwht
