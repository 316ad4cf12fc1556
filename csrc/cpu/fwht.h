// Torch-free interface of the C++ CPU Walsh-Hadamard kernels.
//
// The kernel computes, for every row r of a batch,
//     y[r, :d_out] = scale * (H_n * pad_n(x[r, :d_in]))[:d_out]
// with H_n the Sylvester Hadamard matrix (natural order), stages applied in increasing distance
// 1, 2, 4, ... n/2 (so the floating-point result does not depend on the instruction set or on the
// number of threads). Half types (fp16, bf16) are converted to fp32 on load and rounded to nearest
// even on store; fp32 computes in fp32 and fp64 in fp64.
//
// Threading belongs to the caller (the ATen glue): the work is cut into independent pieces
//   * small rows (n <= plan.block): run_rows() over ranges of rows;
//   * large rows: for each row, run_blocks() over ranges of blocks (the stages inside a block),
//     then run_groups() over ranges of column groups (the stages across blocks); on one thread
//     with a work row and a streamed output, run_rows_overlapped() interleaves each row's
//     second sweep with the next row's first.
// Each piece may run on any thread; results are bitwise identical whatever the split.
#pragma once

#include <cstddef>
#include <cstdint>

#include "shared/dtype.h"

namespace zerofwht {
namespace cpu {

using ::zerofwht::DType;  // shared/dtype.h: one enum for every device

constexpr int kMaxBatchDims = 6;

// Where row r starts, in elements from the base pointer. Rows are numbered in row-major order of
// `sizes`; the offset of row r is sum_k index_k(r) * strides[k].
struct RowLayout {
  int ndim;                        // number of batch dimensions (0 = a single row)
  int64_t sizes[kMaxBatchDims];    // batch sizes, outermost first
  int64_t strides[kMaxBatchDims];  // element strides of the batch dimensions
};

struct FwhtParams {
  const void* x;        // input base pointer (dtype elements); elements of a row are contiguous
  void* y;              // output base pointer; may equal x (in place) when the layouts are equal
  DType dtype;          // element type of x and y
  int64_t rows;         // number of rows (product of the batch sizes)
  RowLayout x_layout;   // row offsets of x, elements
  RowLayout y_layout;   // row offsets of y, elements
  int64_t d_in;         // elements read per row, 0 <= d_in <= n; the rest of the row is zero
  int64_t n;            // transform length, a power of two >= 1
  int64_t d_out;        // elements written per row, 1 <= d_out <= n (<= n << lg_copies when folded)
  double scale;         // multiplies every output (applied once, at the final store)
  int lg_copies;        // 0 from callers; set by fold_padding(), which see
};

// Rows whose input fills at most half of n are folded. Let m be the smallest power of two >= d_in
// (and >= 16, a whole vector of every variant). Every block of m past the first is zero until the
// stages of distance >= m, and those stages then only copy the first block's transform t: a block
// gets t + 0 from a stage where it is the lower half and t - 0 where it is the upper one. So the
// row's output is 2^j copies of t (n = m * 2^j): the last copy is t - 0 and the others t + 0 (the
// same numbers, except that -0 becomes +0, as the full computation makes it). fold_padding() turns
// such a transform into one of length m (p.n = m) and records j in p.lg_copies; the kernels then
// transform m elements per row and write the copies, up to d_out. The result is bitwise that of
// the full transform, for a log2(m) / log2(n) share of its arithmetic. Only rows of m that fit
// one L1 piece (FwhtPlan::piece, 2/3 of L1d) are folded: they are transformed in an L1 scratch row
// and copied out from there. Longer ones measured slower folded (Zen 4, one thread, 2^22 output
// elements per call, (64, 2^14) -> 2^16: 0.28 unfolded against 0.34 ns per element folded, ten
// alternating rounds; copying the middle copies with memcpy did not recover it). Callers run it on
// their params before plan() and the run functions; plan() then describes the folded transform.
// Returns whether it folded.
bool fold_padding(FwhtParams& p);

// How a transform is cut into pieces. It depends on the shapes, the dtype, the number of threads,
// whether the transform is in place, the instruction set and the CPU's caches, and none of it
// changes a bit of the result: stages always run in increasing distance.
struct FwhtPlan {
  bool blocked;          // false: run_rows(); true: run_blocks() then run_groups() per row
  int64_t block;         // elements per block (== n when not blocked)
  int64_t num_blocks;    // n / block
  int64_t group;         // columns per column group (blocked only), elements
  int64_t num_groups;    // block / group
  bool needs_work;       // blocked only: the caller provides a work buffer of work_bytes per row
  int64_t work_bytes;    // size of that buffer (n compute-type elements), bytes; 0 if none
  int64_t rows_grain;    // suggested minimum rows per piece for run_rows
  bool stream;           // final stores bypass the caches (non-temporal): the output is too
                         // large to be read back from cache, and this saves the read-for-ownership
  bool stream_blocks;    // blocked only: the first sweep's stores bypass the caches too (the row
                         // is too large to wait in the last-level cache for the second sweep)
  bool overlap_rows;     // blocked, work row, one thread: run_rows_overlapped() (each row's second
                         // sweep interleaved with the next row's first sweep, two work rows)
  // Cache blocking, from the CPU's cache sizes (CpuTuning); none of it changes a bit of the result.
  int64_t pack_elems;    // short whole rows packed back to back are done this many elements at a time
  int64_t piece;         // rows of at least 2 pieces are done piece by piece first (elements)
  int leaf_radix_log2;   // the leaf pass keeps at most 2^this vectors in registers
};

// What the kernels' plans are tuned to: the cache sizes of the CPU and how its vector unit copes
// with long register chains. Read once (Linux sysfs, else sysconf, else the defaults below).
struct CpuTuning {
  int64_t l1d_bytes;     // L1 data cache of one core (default 48 KB)
  int64_t l2_bytes;      // L2 of one core (default 2 MB)
  int64_t l3_bytes;      // last-level cache shared by the cores (0 = unknown)
  bool amd;              // AMD CPU: 512-bit operations are split in two (Zen 4), see the leaf pass
  int stream_override;   // ZEROFWHT_CPU_STREAM: 1 always / 0 never non-temporal stores, -1 auto
};
const CpuTuning& cpu_tuning();

// One instruction-set variant of the kernels (see fwht_impl.h).
struct KernelTable {
  const char* isa;  // "avx512", "avx2" or "generic"
  // threads: how many threads the caller will use; it may change the plan (e.g. split one large
  // row into blocks when there are fewer rows than threads) but never the result.
  FwhtPlan (*plan)(const FwhtParams& p, int threads);
  void (*run_rows)(const FwhtParams& p, const FwhtPlan& plan, int64_t row_begin, int64_t row_end);
  // work: the buffer of plan.work_bytes when plan.needs_work, else nullptr (y's row is used).
  void (*run_blocks)(const FwhtParams& p, const FwhtPlan& plan, int64_t row, void* work,
                     int64_t block_begin, int64_t block_end);
  void (*run_groups)(const FwhtParams& p, const FwhtPlan& plan, int64_t row, const void* work,
                     int64_t group_begin, int64_t group_end);
  // A whole large row on the calling thread: run_blocks then run_groups over all of it.
  void (*run_row)(const FwhtParams& p, const FwhtPlan& plan, int64_t row, void* work);
  // Large rows row_begin..row_end on the calling thread, the second sweep of each row cut into
  // num_blocks slices run between the first-sweep blocks of the next row, so that its streamed
  // stores overlap the next row's in-cache work. work: 2 * plan.work_bytes (two work rows).
  void (*run_rows_overlapped)(const FwhtParams& p, const FwhtPlan& plan, int64_t row_begin, int64_t row_end,
                              void* work);
};

const KernelTable& kernels_generic();
const KernelTable* kernels_avx2();    // nullptr when not compiled for this architecture
const KernelTable* kernels_avx512();  // nullptr when not compiled for this architecture

// The variant in use: the best the CPU supports, unless ZEROFWHT_CPU_ISA or set_isa() chose one.
const KernelTable& active_kernels();
// Names the CPU supports, best first (always ends with "generic").
const char* supported_isas();
// Select a variant by name ("avx512", "avx2", "generic", "auto"); returns false (and changes
// nothing) when the name is unknown or the CPU lacks it.
bool set_isa(const char* name);

}  // namespace cpu
}  // namespace zerofwht
