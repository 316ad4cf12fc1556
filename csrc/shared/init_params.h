// Torch-free description of one fused weight fill (zerofwht::init_fill_), shared by the CPU
// kernel (cpu/init_fill.cpp), the CUDA kernel (cuda/init_fill.cu) and both glue files. Plain C++17; the
// element rule is also compiled for the GPU (ZF_HD = __host__ __device__ under nvcc).
//
// The weight, of full shape (F0, F1, ..., F_{d-1}) (d >= 2: Linear (out, in), conv (out, in, *k)),
// is seen as a logical 2-D matrix of R rows and C columns plus a "tap" index:
//   * row = index along dim 0, R = F0;
//   * flatten mode (TapMode::kFlatten, the IDInit patch-maintain view `w.reshape(out, -1)`):
//     col = row-major flat index of dims 1.., C = F1 * ... * F_{d-1}; every element is on the tap;
//   * centre mode (TapMode::kCentre, the ZerO / dirac conv form): col = index along dim 1, C = F1,
//     tap = row-major flat index of the kernel dims 2..; only tap == tap_centre (every kernel index
//     at F_k // 2) holds the matrix, every other tap is 0.
// For a 2-D weight both modes are the same. The value at (row, col) on the tap is given by the kind:
//   kZeros            0
//   kPartialIdentity  pos if row == col                                   (I*, times the value)
//   kHadamard         pos if popcount(row & col) is even, else neg        (c * H_P block)
//   kIdi              pos if row % C == col                               (IDI_tau)
//   kIdiz             neg if (R < C ? col >= R && row % (C - R) == col - R : col == (row + 1) % C),
//                     else pos if row % C == col, else 0                  (IDIZ_eps)
// pos / neg are the bit patterns of the value and its negation in the element type (prepared by
// the glue), so the kernels only move integers of 2, 4 or 8 bytes and never round anything.
//
// The local tensor (a shard, a transposed view, a slice) is described by iteration dimensions,
// outermost first: along dimension k the element index i_k moves the memory offset by strides[k]
// and the logical (row, col, tap) by (row_coef[k], col_coef[k], tap_coef[k]). build_layout() makes
// them from the tensor's sizes, strides and global offsets: it drops size-1 dims, orders the dims
// by decreasing memory stride (so the innermost one is the most contiguous) and merges dims that
// step evenly into each other.
#pragma once

#include <cstdint>

#include "shared/host_device.h"

namespace zerofwht {
namespace init {

enum class Kind : int { kZeros = 0, kPartialIdentity = 1, kHadamard = 2, kIdi = 3, kIdiz = 4 };
constexpr int kNumKinds = 5;
enum class TapMode : int { kFlatten = 0, kCentre = 1 };

constexpr int kMaxDims = 6;  // dimensions of the weight (and iteration dimensions) at most

struct InitParams {
  void* w;                     // destination: address of the local tensor's element 0
  int elem_bytes;              // 2 (fp16 / bf16), 4 (fp32) or 8 (fp64)
  Kind kind;                   // the element rule (see above)
  uint64_t pos_bits;           // bit pattern of +value in the element type (low elem_bytes bytes)
  uint64_t neg_bits;           // bit pattern of -value in the element type
  int64_t full_rows;           // R: rows of the full logical matrix (elements)
  int64_t full_cols;           // C: columns of the full logical matrix (elements)
  int64_t row0;                // global row of the local element 0
  int64_t col0;                // global column of the local element 0
  int64_t tap0;                // global tap of the local element 0
  int64_t tap_centre;          // the tap that holds the matrix (0 in flatten mode, tap0 == 0 too)
  int ndim;                    // iteration dims, 1..kMaxDims, outermost first
  int64_t sizes[kMaxDims];     // elements along each iteration dim (all >= 2 except a lone dim)
  int64_t strides[kMaxDims];   // memory stride of each iteration dim (elements)
  int64_t row_coef[kMaxDims];  // logical row step per index step
  int64_t col_coef[kMaxDims];  // logical column step per index step
  int64_t tap_coef[kMaxDims];  // logical tap step per index step
  int64_t numel;               // total elements of the local tensor
};

// The (at most two) non-zero columns of logical row `row` for the sparse kinds: `plus` gets pos,
// `minus` gets neg (minus wins where they coincide); -1 = none. Not used for kHadamard.
ZF_HD void row_nonzeros(const InitParams& p, int64_t row, int64_t* plus, int64_t* minus) {
  const int64_t R = p.full_rows, C = p.full_cols;
  *plus = -1;
  *minus = -1;
  switch (p.kind) {
    case Kind::kPartialIdentity: *plus = row < C ? row : -1; break;
    case Kind::kIdi: *plus = row % C; break;
    case Kind::kIdiz:
      *plus = row % C;
      *minus = R < C ? R + row % (C - R) : (row + 1) % C;
      break;
    default: break;
  }
}

ZF_HD int parity64(uint64_t x) {
#if defined(__CUDA_ARCH__)
  return __popcll(x) & 1;
#elif defined(__GNUC__) || defined(__clang__)
  return __builtin_parityll(x);
#else
  x ^= x >> 32; x ^= x >> 16; x ^= x >> 8; x ^= x >> 4; x ^= x >> 2; x ^= x >> 1;
  return static_cast<int>(x & 1);
#endif
}

// The bits of the element at logical (row, col, tap): the rule above, for any kind.
ZF_HD uint64_t element_bits(const InitParams& p, int64_t row, int64_t col, int64_t tap) {
  if (tap != p.tap_centre) return 0;
  if (p.kind == Kind::kHadamard)
    return parity64(static_cast<uint64_t>(row & col)) ? p.neg_bits : p.pos_bits;
  int64_t plus, minus;
  row_nonzeros(p, row, &plus, &minus);
  return col == minus ? p.neg_bits : (col == plus ? p.pos_bits : 0);
}

// Fills the layout part of `p` (ndim .. numel, row0, col0, tap0, tap_centre, full_rows,
// full_cols) for a local tensor of `dim` dims with the given sizes and strides (elements), whose
// element 0 sits at global index `offset` of a full tensor of shape `full`. Returns nullptr on
// success, else a message (the glue checks the arguments first, so this is a safety net).
inline const char* build_layout(int dim, const int64_t* sizes, const int64_t* strides,
                                const int64_t* offset, const int64_t* full, TapMode mode,
                                InitParams* p) {
  if (dim < 2 || dim > kMaxDims) return "the weight must have 2 to 6 dimensions";
  int64_t row_c[kMaxDims] = {0}, col_c[kMaxDims] = {0}, tap_c[kMaxDims] = {0};
  row_c[0] = 1;
  p->full_rows = full[0];
  p->row0 = offset[0];
  p->col0 = 0;
  p->tap0 = 0;
  p->tap_centre = 0;
  if (mode == TapMode::kFlatten) {
    int64_t step = 1;
    for (int d = dim - 1; d >= 1; --d) {
      col_c[d] = step;
      p->col0 += offset[d] * step;
      step *= full[d];
    }
    p->full_cols = step;
  } else {
    col_c[1] = 1;
    p->col0 = offset[1];
    p->full_cols = full[1];
    int64_t step = 1;
    for (int d = dim - 1; d >= 2; --d) {
      tap_c[d] = step;
      p->tap0 += offset[d] * step;
      p->tap_centre += (full[d] / 2) * step;
      step *= full[d];
    }
  }
  // Keep dims of size > 1; order by decreasing stride (stable insertion sort, at most 6 dims).
  int order[kMaxDims];
  int n = 0;
  p->numel = 1;
  for (int d = 0; d < dim; ++d) {
    p->numel *= sizes[d];
    if (sizes[d] == 1) continue;
    int k = n++;
    while (k > 0 && strides[order[k - 1]] < strides[d]) {
      order[k] = order[k - 1];
      --k;
    }
    order[k] = d;
  }
  p->ndim = 0;
  for (int k = 0; k < n; ++k) {
    const int d = order[k];
    if (p->ndim > 0) {  // merge into the previous (outer) dim when it steps evenly over this one
      const int o = p->ndim - 1;
      const int64_t s = sizes[d];
      if (p->strides[o] == strides[d] * s && p->row_coef[o] == row_c[d] * s &&
          p->col_coef[o] == col_c[d] * s && p->tap_coef[o] == tap_c[d] * s) {
        p->sizes[o] *= s;
        p->strides[o] = strides[d];
        p->row_coef[o] = row_c[d];
        p->col_coef[o] = col_c[d];
        p->tap_coef[o] = tap_c[d];
        continue;
      }
    }
    const int o = p->ndim++;
    p->sizes[o] = sizes[d];
    p->strides[o] = strides[d];
    p->row_coef[o] = row_c[d];
    p->col_coef[o] = col_c[d];
    p->tap_coef[o] = tap_c[d];
  }
  if (p->ndim == 0) {  // a single element
    p->ndim = 1;
    p->sizes[0] = 1;
    p->strides[0] = 1;
    p->row_coef[0] = p->col_coef[0] = p->tap_coef[0] = 0;
  }
  return nullptr;
}

// Number of runs (every iteration index but the innermost) and the run length.
ZF_HD int64_t num_runs(const InitParams& p) { return p.numel / p.sizes[p.ndim - 1]; }
ZF_HD int64_t run_length(const InitParams& p) { return p.sizes[p.ndim - 1]; }

// Where run `r` starts: memory offset (elements) and logical (row, col, tap) of its first element.
struct RunStart {
  int64_t mem, row, col, tap;
};
ZF_HD RunStart run_start(const InitParams& p, int64_t r) {
  RunStart s{0, p.row0, p.col0, p.tap0};
  for (int k = p.ndim - 2; k >= 0; --k) {
    const int64_t i = k == 0 ? r : r % p.sizes[k];  // r < sizes[0] once the inner dims are gone
    if (k > 0) r /= p.sizes[k];
    s.mem += i * p.strides[k];
    s.row += i * p.row_coef[k];
    s.col += i * p.col_coef[k];
    s.tap += i * p.tap_coef[k];
  }
  return s;
}

}  // namespace init
}  // namespace zerofwht
