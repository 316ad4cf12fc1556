// ATen glue of the CPU kernels: argument checks, strides, allocation, threading, dtype mapping.
// Every Tensor operation of the CPU path is here (outputs are allocated through the output cache,
// output_cache.cpp); the kernels (fwht_*.cpp, init_fill.cpp) never see torch.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include "cpu/fwht.h"
#include "cpu/output_cache.h"
#include "fwht_glue_common.h"

namespace zerofwht {

namespace {

// Batch dimensions (all but the last) as a RowLayout: size-1 dims dropped, dims that step evenly
// into each other merged. Returns false when more than kMaxBatchDims remain.
bool row_layout(const at::Tensor& t, cpu::RowLayout* layout) {
  // DimVector: on the stack. (No heap allocation on the hot path: small allocations interleaved
  // with the large output buffers were seen to make glibc hand back fresh pages, page-faulted on
  // every call.)
  at::DimVector sizes, strides;
  for (int64_t d = 0; d + 1 < t.dim(); ++d) {
    const int64_t size = t.size(d), stride = t.stride(d);
    if (size == 1) continue;
    if (!sizes.empty() && strides.back() == stride * size) {
      sizes.back() *= size;
      strides.back() = stride;
    } else {
      sizes.push_back(size);
      strides.push_back(stride);
    }
  }
  if (sizes.size() > size_t(cpu::kMaxBatchDims)) return false;
  layout->ndim = static_cast<int>(sizes.size());
  for (size_t k = 0; k < sizes.size(); ++k) {
    layout->sizes[k] = sizes[k];
    layout->strides[k] = strides[k];
  }
  return true;
}

// A tensor the kernel can read in place: last dimension contiguous, batch dims expressible.
at::Tensor readable(const at::Tensor& x, cpu::RowLayout* layout) {
  if ((x.size(-1) <= 1 || x.stride(-1) == 1) && row_layout(x, layout)) return x;
  at::Tensor c = x.contiguous();
  TORCH_INTERNAL_ASSERT(row_layout(c, layout));
  return c;
}

bool writable(const at::Tensor& y, cpu::RowLayout* layout) {
  return (y.size(-1) <= 1 || y.stride(-1) == 1) && row_layout(y, layout);
}

constexpr int64_t kRowParallelWorkBytes = int64_t(256) << 20;  // work rows of all threads together

// Runs the kernel for x -> y (layouts already set in p).
void launch(cpu::FwhtParams& p) {
  if (p.rows == 0) return;
  const cpu::KernelTable& k = cpu::active_kernels();
  const int threads = at::get_num_threads();
  const cpu::FwhtPlan plan = k.plan(p, threads);
  if (!plan.blocked) {
    at::parallel_for(0, p.rows, plan.rows_grain,
                     [&](int64_t r0, int64_t r1) { k.run_rows(p, plan, r0, r1); });
    return;
  }
  // Work rows come from the output cache, like outputs: a fresh buffer of a few MB would
  // page-fault on every call.
  if (threads == 1 && plan.overlap_rows && p.rows >= 2) {  // two work rows, used in turn
    at::Tensor work = empty_output({plan.work_bytes * 2}, at::TensorOptions().dtype(at::kByte));
    k.run_rows_overlapped(p, plan, 0, p.rows, work.data_ptr());
    return;
  }
  // Long rows (two sweeps), at least as many as threads: each thread takes whole rows, so a row's
  // blocks stay in its own core's L2 between the sweeps (measured, 2 threads, 2^19: 0.31-0.33
  // instead of 0.38-0.45 ns per element). Each thread needs its own work row, so very long rows
  // are still split over the threads one row at a time, and so are row counts that would leave
  // threads idle for a large part of the time (e.g. 3 rows on 2 threads).
  const bool balanced = p.rows % threads == 0 || p.rows >= 4 * int64_t(threads);
  if ((threads == 1 || (p.rows >= threads && balanced)) && plan.work_bytes * threads <= kRowParallelWorkBytes) {
    at::Tensor work;
    if (plan.needs_work) work = empty_output({plan.work_bytes * threads}, at::TensorOptions().dtype(at::kByte));
    at::parallel_for(0, p.rows, 1, [&](int64_t r0, int64_t r1) {
      void* w = plan.needs_work ? static_cast<char*>(work.data_ptr()) + plan.work_bytes * at::get_thread_num()
                                : nullptr;
      for (int64_t r = r0; r < r1; ++r) k.run_row(p, plan, r, w);
    });
    return;
  }
  at::Tensor work;
  if (plan.needs_work) work = empty_output({plan.work_bytes}, at::TensorOptions().dtype(at::kByte));
  void* w = plan.needs_work ? work.data_ptr() : nullptr;
  for (int64_t r = 0; r < p.rows; ++r) {  // each long row is split over the threads, in two sweeps
    at::parallel_for(0, plan.num_blocks, 1,
                     [&](int64_t b0, int64_t b1) { k.run_blocks(p, plan, r, w, b0, b1); });
    at::parallel_for(0, plan.num_groups, 1,
                     [&](int64_t g0, int64_t g1) { k.run_groups(p, plan, r, w, g0, g1); });
  }
}

void run(const at::Tensor& x_in, int64_t n, int64_t out_features, double scale, const at::Tensor& y) {
  cpu::FwhtParams p{};
  const at::Tensor x = readable(x_in, &p.x_layout);
  TORCH_INTERNAL_ASSERT(writable(y, &p.y_layout));
  p.x = x.data_ptr();
  p.y = y.data_ptr();
  p.dtype = kernel_dtype(x.scalar_type());
  p.rows = x.numel() / std::max<int64_t>(x.size(-1), 1);
  if (x.size(-1) == 0) {  // rows of an empty last dimension: count them from the batch shape
    p.rows = 1;
    for (int64_t d = 0; d + 1 < x.dim(); ++d) p.rows *= x.size(d);
  }
  p.d_in = x.size(-1);
  p.n = n;
  p.d_out = out_features;
  p.scale = scale;
  cpu::fold_padding(p);
  launch(p);
}

at::Tensor fwht_cpu(const at::Tensor& x, int64_t n, int64_t out_features, double scale) {
  check_args("zerofwht::fwht", x, n, out_features);
  at::DimVector shape(x.sizes());
  shape.back() = out_features;
  at::Tensor y = empty_output(shape, x.options());
  run(x, n, out_features, scale, y);
  return y;
}

void fwht_out_cpu(const at::Tensor& x, int64_t n, int64_t out_features, double scale, at::Tensor out) {
  check_args("zerofwht::fwht_out", x, n, out_features);
  check_out("zerofwht::fwht_out", x, out_features, out);
  cpu::RowLayout layout;
  if (writable(out, &layout) && may_write_directly(x, n, out_features, out)) {
    run(x, n, out_features, scale, out);
  } else {  // strided last dim, partial overlap with x, or too many batch dims: via a temporary
    out.copy_(fwht_cpu(x, n, out_features, scale));
  }
}

void fwht_inplace_cpu(at::Tensor x, double scale) {
  const int64_t n = x.size(-1);
  check_args("zerofwht::fwht_inplace", x, n, n);
  fwht_out_cpu(x, n, n, scale, x);
}

}  // namespace

TORCH_LIBRARY_IMPL(zerofwht, CPU, m) {
  m.impl("fwht", &fwht_cpu);
  m.impl("fwht_out", &fwht_out_cpu);
  m.impl("fwht_inplace", &fwht_inplace_cpu);
}

}  // namespace zerofwht

// =================================================================================================
// zerofwht::init_fill_ (fused weight materialization). Kernel: init_fill.cpp; the checks and the
// Tensor -> InitParams translation are shared with the CUDA glue (init_glue_common.h).
// =================================================================================================
#include "cpu/init_fill.h"
#include "init_glue_common.h"

namespace zerofwht {
namespace {

void init_fill_cpu(at::Tensor w, int64_t kind, double value, int64_t tap_mode, at::IntArrayRef offset,
                   at::IntArrayRef full_shape) {
  const init::InitParams p = prepare_init("zerofwht::init_fill_", w, kind, value, tap_mode, offset,
                                          full_shape);
  const init::cpu::FillPlan plan = init::cpu::make_plan(p);
  at::parallel_for(0, plan.pieces, plan.grain,
                   [&](int64_t b, int64_t e) { init::cpu::fill_pieces(p, plan, b, e); });
}

}  // namespace

TORCH_LIBRARY_IMPL(zerofwht, CPU, m) {
  m.impl("init_fill_", &init_fill_cpu);
}

}  // namespace zerofwht

// =================================================================================================
// zerofwht::fwht_kron: y = scale * ((H_K kron H_M) pad_n(x))[..., :out_features], n = K * M.
// Kernel: kron_<isa>.cpp (cpu/kron.h); checks shared with the CUDA glue (kron_glue_common.h).
// =================================================================================================
#include "cpu/kron.h"
#include "kron_glue_common.h"

namespace zerofwht {
namespace {

at::Tensor fwht_kron_cpu(const at::Tensor& x_in, const at::Tensor& base_in, int64_t n, int64_t out_features,
                         double scale) {
  const char* op = "zerofwht::fwht_kron";
  const int64_t K = check_kron_args(op, x_in, base_in, n, out_features);
  TORCH_CHECK(x_in.device().is_cpu(), op, ": x must be a CPU tensor here, got one on ", x_in.device());
  const at::Tensor base = base_in.contiguous();
  at::DimVector shape(x_in.sizes());
  shape.back() = out_features;
  at::Tensor y = empty_output(shape, x_in.options());
  const int64_t rows = kron_rows(x_in);
  if (rows == 0) return y;
  if (K == 1) {  // H_1 = [+-1]: the power-of-two transform itself, bit for bit
    const float b = base.data_ptr<float>()[0];
    TORCH_CHECK_VALUE(b == 1.0f || b == -1.0f, op, ": base entries must be +1 or -1, got base[0, 0]=", b);
    run(x_in, n, out_features, scale * b, y);
    return y;
  }
  int64_t xs = 0, ys = 0;
  const at::Tensor x = uniform_rows(x_in, &xs) ? x_in : x_in.contiguous();
  if (!x.is_same(x_in)) TORCH_INTERNAL_ASSERT(uniform_rows(x, &xs));
  TORCH_INTERNAL_ASSERT(uniform_rows(y, &ys));
  cpu::KronParams p{};
  p.x = x.data_ptr();
  p.y = y.data_ptr();
  p.dtype = kernel_dtype(x.scalar_type());
  p.rows = rows;
  p.x_row_stride = xs;
  p.y_row_stride = ys;
  p.d_in = x.size(-1);
  p.K = K;
  p.M = n / K;
  p.n = n;
  p.d_out = out_features;
  p.scale = scale;
  const int threads = at::get_num_threads();
  cpu::KronPlan plan;
  if (!cpu::kron_plan(p, base.data_ptr<float>(), threads, &plan)) {
    const at::Tensor bad = (base != 1.0f).logical_and(base != -1.0f).nonzero();
    const int64_t i = bad[0][0].item<int64_t>(), j = bad[0][1].item<int64_t>();
    TORCH_CHECK_VALUE(false, op, ": base entries must be +1 or -1, got base[", i, ", ", j, "]=",
                      base[i][j].item<float>());
  }
  const cpu::KronTable& k = cpu::kron_kernels();
  at::parallel_for(0, rows, std::max<int64_t>(1, (int64_t(16) << 10) / n),
                   [&](int64_t r0, int64_t r1) { k.run_rows(p, plan, r0, r1); });
  return y;
}

}  // namespace

TORCH_LIBRARY_IMPL(zerofwht, CPU, m) {
  m.impl("fwht_kron", &fwht_kron_cpu);
}

}  // namespace zerofwht
