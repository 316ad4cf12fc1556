// ATen side of zerofwht::init_fill_ shared by the CPU glue (cpu/ops.cpp) and the CUDA glue
// (cuda/ops.cu): argument checks (messages name the argument and its value, like the Python
// front end) and the translation of a Tensor + arguments into the torch-free InitParams.
// The Python layer checks its arguments first; these checks stay for direct torch.ops calls: each
// guards the kernels against out-of-range reads, writes or index arithmetic (an unknown kind or
// tap mode, offset / full_shape of the wrong length, a zero-size dimension (runs of length 0), a
// weight too large for int64 indices, a w that overlaps itself). The offset range check is the one
// exception kept for clarity: a weight placed outside full_shape is a caller's error that would
// otherwise fill silently wrong values.
#pragma once

#include <ATen/ATen.h>
#include <ATen/MemoryOverlap.h>

#include <cstring>
#include <limits>

#include "shared/init_params.h"

namespace zerofwht {

// Bit pattern of `value` converted to dtype t exactly as Tensor.to(t) converts a float64.
inline uint64_t init_value_bits(double value, at::ScalarType t) {
  const at::Tensor v = at::scalar_tensor(value, at::TensorOptions().dtype(at::kDouble)).to(t);
  uint64_t bits = 0;
  std::memcpy(&bits, v.data_ptr(), v.element_size());
  return bits;
}

inline init::InitParams prepare_init(const char* op, const at::Tensor& w, int64_t kind, double value,
                                     int64_t tap_mode, at::IntArrayRef offset,
                                     at::IntArrayRef full_shape) {
  const auto t = w.scalar_type();
  TORCH_CHECK_TYPE(t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16, op,
                   ": w must be a floating tensor (float16, bfloat16, float32 or float64), got dtype=", t);
  const int64_t dim = w.dim();
  TORCH_CHECK_VALUE(dim >= 2 && dim <= init::kMaxDims, op,
                    ": w must have 2 to 6 dimensions ((out, in) or (out, in, *kernel)), got shape ",
                    w.sizes());
  TORCH_CHECK_VALUE(kind >= 0 && kind < init::kNumKinds, op, ": kind must be in [0, ",
                    init::kNumKinds, "), got kind=", kind);
  TORCH_CHECK_VALUE(tap_mode == 0 || tap_mode == 1, op,
                    ": tap_mode must be 0 (flatten) or 1 (centre), got tap_mode=", tap_mode);
  TORCH_CHECK_VALUE(int64_t(offset.size()) == dim, op, ": offset must have one entry per dimension of w (",
                    dim, "), got offset=", offset);
  TORCH_CHECK_VALUE(int64_t(full_shape.size()) == dim, op,
                    ": full_shape must have one entry per dimension of w (", dim, "), got full_shape=",
                    full_shape);
  double full_numel = 1;
  for (int64_t d = 0; d < dim; ++d) {
    TORCH_CHECK_VALUE(w.size(d) >= 1, op, ": w has a zero-size dimension (shape ", w.sizes(),
                      "); there is nothing to initialize");
    TORCH_CHECK_VALUE(offset[d] >= 0 && offset[d] + w.size(d) <= full_shape[d], op, ": offset[", d,
                      "]=", offset[d], " with w.shape[", d, "]=", w.size(d), " lies outside full_shape[",
                      d, "]=", full_shape[d], " (offset=", offset, ", full_shape=", full_shape, ")");
    full_numel *= static_cast<double>(full_shape[d]);
  }
  TORCH_CHECK_VALUE(full_numel < 4.0e18, op, ": full_shape=", full_shape, " is too large");
  TORCH_CHECK(at::has_internal_overlap(w) != at::MemOverlap::Yes, op,
              ": w has internal overlap (e.g. an expanded tensor); it cannot be written");

  init::InitParams p{};
  p.w = w.data_ptr();
  p.elem_bytes = static_cast<int>(w.element_size());
  p.kind = static_cast<init::Kind>(kind);
  p.pos_bits = init_value_bits(value, t);
  p.neg_bits = init_value_bits(-value, t);
  const char* err = init::build_layout(static_cast<int>(dim), w.sizes().data(), w.strides().data(),
                                       offset.data(), full_shape.data(),
                                       static_cast<init::TapMode>(tap_mode), &p);
  TORCH_CHECK(err == nullptr, op, ": ", err ? err : "");
  return p;
}

}  // namespace zerofwht
