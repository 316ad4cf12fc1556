// The Python module `zerofwht._C`. Importing it runs the op registrations (registration.cpp and
// the device glue files); its functions only report how the extension was built and expose the
// kernels' internals for tests, benchmarks and tuning (ISA choice, plans, the output cache). No op
// goes through here: the ops are called as torch.ops.zerofwht.*.
#include <torch/extension.h>

#include <string>

#include "cpu/fwht.h"
#include "cpu/output_cache.h"
#if ZEROFWHT_WITH_CUDA
#include "cuda/fwht.cuh"
#endif

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "zerofwht compiled kernels (imported for their torch.library registrations)";
  m.def("built_with_cuda", [] { return ZEROFWHT_WITH_CUDA != 0; },
        "Whether the CUDA kernels were compiled into this extension.");
#if ZEROFWHT_WITH_CUDA
  m.def("cuda_max_log_n", [](int dtype_code, int max_smem_bytes) {
          return zerofwht::cuda::max_log_n(static_cast<zerofwht::cuda::DType>(dtype_code), max_smem_bytes);
        },
        "Longest transform (log2 n) of the CUDA kernel for a dtype code (0 fp32, 1 fp64, 2 fp16, "
        "3 bf16) on a device with this much opt-in shared memory per block.");
#endif
  m.def("cpu_cache_stats", [] {
          const zerofwht::CacheStats s = zerofwht::cpu_cache_stats();
          return pybind11::dict(pybind11::arg("cached_bytes") = s.cached_bytes,
                                pybind11::arg("limit_bytes") = s.limit_bytes, pybind11::arg("buffers") = s.buffers,
                                pybind11::arg("hits") = s.hits, pybind11::arg("misses") = s.misses);
        },
        "The CPU output cache: bytes kept, limit, buffers, hits and misses.");
  m.def("cpu_cache_clear", &zerofwht::cpu_cache_clear, "Return every cached CPU output buffer to the system.");
  m.def("cpu_cache_set_limit", &zerofwht::cpu_cache_set_limit, pybind11::arg("bytes"),
        "Most bytes of freed CPU outputs kept for reuse (0 turns the cache off).");
  m.def("cpu_isa", [] { return std::string(zerofwht::cpu::active_kernels().isa); },
        "The instruction set the CPU kernels run with: avx512, avx2 or generic.");
  m.def("cpu_tuning", [] {
          const zerofwht::cpu::CpuTuning& t = zerofwht::cpu::cpu_tuning();
          pybind11::dict d;
          d["l1d_bytes"] = t.l1d_bytes;
          d["l2_bytes"] = t.l2_bytes;
          d["l3_bytes"] = t.l3_bytes;
          d["amd"] = t.amd;
          d["stream_override"] = t.stream_override;
          return d;
        },
        "What the CPU kernels' plans are tuned to: per-core L1d and L2, the shared L3 (0 = unknown) "
        "and whether the CPU is an AMD one.");
  m.def("cpu_plan",
        [](int64_t n, int64_t rows, int64_t d_in, int64_t d_out, const std::string& dtype, int threads,
           bool in_place) {
          using zerofwht::cpu::DType;
          TORCH_CHECK_VALUE(n >= 1 && (n & (n - 1)) == 0, "cpu_plan: n must be a power of two >= 1, got ", n);
          TORCH_CHECK_VALUE(rows >= 1, "cpu_plan: rows must be >= 1, got ", rows);
          if (d_in < 0) d_in = n;
          if (d_out < 0) d_out = n;
          TORCH_CHECK_VALUE(d_in <= n, "cpu_plan: d_in must be <= n = ", n, ", got ", d_in);
          TORCH_CHECK_VALUE(d_out >= 1 && d_out <= n, "cpu_plan: d_out must be in [1, n = ", n, "], got ", d_out);
          TORCH_CHECK_VALUE(threads >= 1, "cpu_plan: threads must be >= 1, got ", threads);
          zerofwht::cpu::FwhtParams p{};
          if (dtype == "float32") p.dtype = DType::kFloat32;
          else if (dtype == "float64") p.dtype = DType::kFloat64;
          else if (dtype == "float16") p.dtype = DType::kFloat16;
          else if (dtype == "bfloat16") p.dtype = DType::kBFloat16;
          else TORCH_CHECK_VALUE(false, "cpu_plan: dtype must be float32, float64, float16 or bfloat16, got '", dtype, "'");
          p.rows = rows;
          p.n = n;
          p.d_in = d_in;
          p.d_out = d_out;
          p.scale = 1.0;
          p.x_layout.ndim = 1;
          p.x_layout.sizes[0] = rows;
          p.x_layout.strides[0] = d_in;
          p.y_layout = p.x_layout;
          p.y_layout.strides[0] = d_out;
          TORCH_CHECK_VALUE(!in_place || (d_in == n && d_out == n),
                            "cpu_plan: in_place needs d_in == d_out == n = ", n, ", got d_in ", d_in, ", d_out ", d_out);
          static char in_place_marker;  // plan() only compares the two pointers
          if (in_place) p.x = p.y = &in_place_marker;
          zerofwht::cpu::fold_padding(p);
          const zerofwht::cpu::FwhtPlan plan = zerofwht::cpu::active_kernels().plan(p, threads);
          pybind11::dict d;
          d["n"] = p.n;
          d["copies"] = int64_t(1) << p.lg_copies;
          d["blocked"] = plan.blocked;
          d["block"] = plan.block;
          d["num_blocks"] = plan.num_blocks;
          d["needs_work"] = plan.needs_work;
          d["stream"] = plan.stream;
          d["stream_blocks"] = plan.stream_blocks;
          d["overlap_rows"] = plan.overlap_rows;
          d["piece"] = plan.piece;
          d["pack_elems"] = plan.pack_elems;
          d["leaf_radix_log2"] = plan.leaf_radix_log2;
          return d;
        },
        pybind11::arg("n"), pybind11::arg("rows"), pybind11::arg("d_in") = -1, pybind11::arg("d_out") = -1,
        pybind11::arg("dtype") = "float32", pybind11::arg("threads") = 1, pybind11::arg("in_place") = false,
        "How the CPU kernel would cut a contiguous (rows, d_in) -> (rows, d_out) transform of length n "
        "on this many threads (for tests and tuning): blocking, whether the output streams past the "
        "caches (non-temporal stores), and how many vectors (2^leaf_radix_log2) the first pass keeps "
        "in registers; n and copies: the length actually transformed and how many copies of it make "
        "the row (rows padded to at most half of n are folded, see fold_padding in csrc/cpu/fwht.h). "
        "d_in / d_out default to n; in_place: y is x (fwht_).");
  m.def("supported_cpu_isas", [] { return std::string(zerofwht::cpu::supported_isas()); },
        "Comma-separated instruction sets this CPU can run, best first.");
  m.def("set_cpu_isa", [](const std::string& name) {
          TORCH_CHECK_VALUE(zerofwht::cpu::set_isa(name.c_str()), "set_cpu_isa: '", name,
                            "' is not supported on this CPU/build; supported: ",
                            zerofwht::cpu::supported_isas(), " (or 'auto')");
        },
        "Force the CPU kernel variant (for tests and benchmarks): avx512, avx2, generic or auto.");
}
