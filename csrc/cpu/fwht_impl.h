// Body of the C++ CPU Walsh-Hadamard kernels, written once with GCC/Clang vector extensions and
// compiled once per instruction set. Not a normal header: each fwht_<isa>.cpp includes the
// standard headers, switches the target with `#pragma GCC target`, defines
//   ZF_ISA_NS      namespace of this variant (avx512 / avx2 / generic)
//   ZF_ISA_NAME    its name as a string
//   ZF_VEC_BYTES   vector register width in bytes (64 / 32 / 16)
//   ZF_RADIX_LOG2  log2 of how many vectors one pass keeps in registers (4 with 32 registers,
//                  3 with 16)
//   ZF_STREAM_F32(p, v), ZF_STREAM_F64(p, v), ZF_SFENCE()  (optional) non-temporal store of one
//                  aligned vector, and the fence that orders such stores
//   ZF_F16_LOAD(p), ZF_F16_STORE(p, v)  (optional) one vector of fp16 converted to / from fp32
//                  with the ISA's whole-register conversions (round to nearest even)
// and then includes this file. No torch here (see fwht.h for the contract). The body is split by
// concern into fragments included below, inside this variant's namespace: fwht_simd.h (vector
// and storage types), fwht_butterfly.h (the stages), fwht_row_io.h (what the passes load and
// store), fwht_driver.h (passes over rows, blocks, column groups) and fwht_tuning_plan.h (how a
// transform is cut); this file keeps the entry points of the variant's KernelTable.
//
// Algorithm, for one row of length n = 2^m and W = ZF_VEC_BYTES / sizeof(compute type) lanes:
//   * leaf pass: for each chunk of R = 2^ZF_RADIX_LOG2 vectors, load (converting, zero-padding
//     past d_in), do the log2(W) in-register stages with lane shuffles, then log2(R) stages
//     across the R registers, store;
//   * radix passes: each takes up to log2(R) further stages at once: R vectors at stride h are
//     loaded, combined in registers and stored back;
//   * the last pass multiplies by the scale and stores (converting, dropping columns >= d_out).
// Stages are always applied in increasing distance, and every butterfly is (lo + hi, lo - hi),
// so every instruction set and every way of cutting the work gives bitwise identical results.
// Rows longer than a block (which should stay in L2) are done in two sweeps over memory: the
// stages inside each block, then the stages across blocks, one column group at a time.

#ifndef ZF_ISA_NS
#error "define ZF_ISA_NS, ZF_ISA_NAME, ZF_VEC_BYTES and ZF_RADIX_LOG2 before including cpu/fwht_impl.h"
#endif

// Everything on the hot path is forced inline: the R vectors of a chunk must live in registers,
// and an out-of-line call would send them through the stack.
#ifndef ZF_INLINE
#define ZF_INLINE inline __attribute__((always_inline))
#endif
#ifndef ZF_INLINE_LAMBDA
#define ZF_INLINE_LAMBDA __attribute__((always_inline))
#endif

namespace zerofwht {
namespace cpu {
namespace ZF_ISA_NS {
namespace {

// The pieces, in dependency order (each a fragment compiled inside this namespace):
#include "cpu/fwht_simd.h"
#include "cpu/fwht_butterfly.h"
#include "cpu/fwht_row_io.h"
#include "cpu/fwht_driver.h"
#include "cpu/fwht_tuning_plan.h"

FwhtPlan plan(const FwhtParams& p, int threads) {
  return p.dtype == DType::kFloat64 ? make_plan_t<double>(p, threads) : make_plan_t<float>(p, threads);
}

#define ZF_DTYPE_SWITCH(DT, ...)                                   \
  switch (DT) {                                                    \
    case DType::kFloat32: { using T = float; __VA_ARGS__; break; }  \
    case DType::kFloat64: { using T = double; __VA_ARGS__; break; } \
    case DType::kFloat16: { using T = F16; __VA_ARGS__; break; }    \
    case DType::kBFloat16: { using T = BF16; __VA_ARGS__; break; }  \
  }

void run_rows(const FwhtParams& p, const FwhtPlan& plan, int64_t r0, int64_t r1) {
  ZF_DTYPE_SWITCH(p.dtype, Impl<T>::run_rows(p, plan, r0, r1));
}
void run_blocks(const FwhtParams& p, const FwhtPlan& plan, int64_t r, void* work, int64_t b0, int64_t b1) {
  ZF_DTYPE_SWITCH(p.dtype, Impl<T>::run_blocks(p, plan, r, work, b0, b1));
}
void run_row(const FwhtParams& p, const FwhtPlan& plan, int64_t r, void* work) {
  ZF_DTYPE_SWITCH(p.dtype, Impl<T>::run_row(p, plan, r, work));
}
void run_rows_overlapped(const FwhtParams& p, const FwhtPlan& plan, int64_t r0, int64_t r1, void* work) {
  ZF_DTYPE_SWITCH(p.dtype, Impl<T>::run_rows_overlapped(p, plan, r0, r1, work));
}
void run_groups(const FwhtParams& p, const FwhtPlan& plan, int64_t r, const void* work, int64_t g0,
                int64_t g1) {
  ZF_DTYPE_SWITCH(p.dtype, Impl<T>::run_groups(p, plan, r, work, g0, g1));
}
#undef ZF_DTYPE_SWITCH

}  // namespace

const KernelTable kTable = {ZF_ISA_NAME, &plan, &run_rows, &run_blocks, &run_groups, &run_row, &run_rows_overlapped};

}  // namespace ZF_ISA_NS
}  // namespace cpu
}  // namespace zerofwht
