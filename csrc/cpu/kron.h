// Torch-free interface of the C++ CPU kernel of the Kronecker-structured Hadamard transform
//     y[r, :d_out] = scale * ((H_K kron H_M) pad_n(x[r, :d_in]))[:d_out],   n = K * M, M = 2^k,
// where H_M is the Sylvester matrix and H_K any K x K matrix of +1 / -1 entries (base). A row of
// x viewed as a K x M matrix X (row i = elements i*M ... i*M + M - 1, K the slow index) gives
// Y = H_K . X . H_M.
//
// One pass per row, in a per-thread scratch row that stays in L1/L2: the K sub-rows of length M
// go through the power-of-two kernel (fwht_impl.h, in-cache pieces), then the K x K stage runs
// over columns of vectors and stores only the first d_out outputs, times the scale. Sub-rows
// shorter than a vector (M < W) instead go W rows at a time, transposed so that vector lane l
// holds row r + l: the same additions, lane by lane.
//
// The K x K stage (method of the four Russians): the K sub-rows are cut into groups of g; for
// each group and each vector of columns, all 2^(g-1) sums v_0 +- v_1 +- ... +- v_{g-1} are
// formed once (table), and each output row then adds, per group, the one entry its signs select:
// K * ceil(K/g) vector additions plus the tables, instead of K^2. g depends on K only, never on the
// instruction set or the thread count, so every variant gives bitwise identical results.
// Half types (fp16, bf16) compute in fp32 (one rounding, at the store); fp32 in fp32; fp64 in fp64.
#pragma once

#include <cstdint>
#include <vector>

#include "cpu/fwht.h"

namespace zerofwht {
namespace cpu {

struct KronParams {
  const void* x;         // input (dtype elements); element j of row r at x[r * x_row_stride + j]
  void* y;               // output; element j of row r at y[r * y_row_stride + j]; must not overlap x
  DType dtype;           // element type of x and y
  int64_t rows;          // number of rows
  int64_t x_row_stride;  // elements between rows of x
  int64_t y_row_stride;  // elements between rows of y
  int64_t d_in;          // elements read per row, 0 <= d_in <= n; the rest is zero
  int64_t K;             // order of the base, >= 1
  int64_t M;             // power-of-two factor, >= 1 (n = K * M)
  int64_t n;             // K * M
  int64_t d_out;         // elements written per row, 1 <= d_out <= n
  double scale;          // multiplies every output (once, at the store)
};

// What the K x K stage adds up (from the base, once per call; shared by all threads).
// Table entry e of group q, e < 2^(g-1): v_0 + sum_k (bit k-1 of e ? -1 : +1) v_k over the group's
// sub-rows (relative signs); output row r takes sign * entry for every group, the sign being that
// of its base entry at the group's first column. Per output row the positive terms and the
// negative ones are summed apart and subtracted once at the end.
struct KronPlan {
  int g = 1;                   // sub-rows per group (the last group may have fewer)
  int groups = 0;              // ceil(K / g)
  int entries = 0;             // table entries per group, 2^(g-1)
  int zero_entry = 0;          // index of an all-zero entry (groups * entries)
  int stride = 0;              // ints per output row in `terms`: groups + 2
  // Per output row r: terms[r*stride + 0] first positive entry (or zero_entry), [1] first
  // negative entry (or zero_entry), [2 .. 2 + np) the other positive entries, then the other
  // negative ones; counts[r] = np (positive entries after the first).
  std::vector<int32_t> terms;
  std::vector<int32_t> counts;
  bool stream = false;         // outputs bypass the caches (non-temporal stores)
  // The K x K stage prefetches what the power-of-two passes left of the next row: only for rows
  // of more than kNextRowPrefetchBytes of input, which the hardware prefetchers do not cover in
  // time (measured, docs/kron.md).
  bool prefetch_next_row = false;
};
constexpr int64_t kNextRowPrefetchBytes = 4 << 10;
// Sub-rows of at least this many bytes (in the compute type) lie in the per-thread work matrix
// one cache line further apart than their length (kron_impl.h, run_rows).
constexpr int64_t kPaddedWorkBytes = 2 << 10;

// Fills plan from a row-major K x K base. Returns false (plan unusable) when an entry of the base
// is not exactly +1 or -1.
bool kron_plan(const KronParams& p, const float* base, int threads, KronPlan* plan);

struct KronTable {
  const char* isa;
  // Rows r0 .. r1 - 1 on the calling thread (per-thread scratch inside).
  void (*run_rows)(const KronParams& p, const KronPlan& plan, int64_t r0, int64_t r1);
};
const KronTable* kron_kernels_avx512();  // nullptr when not compiled for this architecture
const KronTable* kron_kernels_avx2();
const KronTable& kron_kernels_generic();
// The variant of the same instruction set as active_kernels() (set_isa / ZEROFWHT_CPU_ISA apply).
const KronTable& kron_kernels();

}  // namespace cpu
}  // namespace zerofwht
