// Torch-free C++ CPU kernel of zerofwht::init_fill_ (see init_params.h for the rule and layout).
//
// The local tensor is written once, run by run (a run = the innermost iteration dimension).
// Threading belongs to the caller (the ATen glue): the runs are cut into `pieces` (a whole run,
// or a chunk of a long one) that may be filled in any order, on any thread; the result does not
// depend on the split. Hot paths, on a contiguous run along a row or a column of the logical
// matrix: the sparse kinds clear the run and then set its <= 2 non-zeros per row (or the periodic
// ones per column); the Hadamard kind copies 64-element blocks of one of two precomputed sign
// patterns (H[r, c] = H64[r & 63, c & 63] * (-1)^popcount(r & c & ~63)). Tensors over 8 MiB are
// written with non-temporal stores on those row paths (FillPlan::stream). Anything else
// (conv kernels in centre mode, strided runs) goes element by element through element_bits().
#pragma once

#include <cstdint>

#include "shared/init_params.h"

namespace zerofwht {
namespace init {
namespace cpu {

struct FillPlan {
  int64_t runs;            // number of runs (product of all iteration sizes but the innermost)
  int64_t run_len;         // elements per run
  int64_t chunk;           // elements per piece of a run (run_len when runs are not split)
  int64_t chunks_per_run;  // ceil(run_len / chunk)
  int64_t pieces;          // runs * chunks_per_run: the unit of work of fill_pieces
  int64_t grain;           // suggested minimum pieces per thread task (about 32K elements)
  bool stream;             // non-temporal stores on contiguous row runs (tensors > 8 MiB)
};

FillPlan make_plan(const InitParams& p);

// Writes pieces [piece_begin, piece_end) of the plan.
void fill_pieces(const InitParams& p, const FillPlan& plan, int64_t piece_begin, int64_t piece_end);

}  // namespace cpu
}  // namespace init
}  // namespace zerofwht
