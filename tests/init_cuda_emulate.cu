// Host check of the CUDA init kernel without a GPU (built and run by scripts/aot_nvcc.sh, which
// tests/test_init_aot.py calls). For thousands of random cases (element size, full shape, shard
// offsets, memory layout: permuted / padded / misaligned, rule, tap mode) it fills a poisoned
// buffer three ways and compares them byte for byte, including the bytes outside the tensor:
//   * the CUDA kernel body (fill_thread), run for every thread of its grid on the host;
//   * the C++ CPU kernel (init_cpu.cpp);
//   * a naive loop over the local multi-index that evaluates element_bits() at the global index
//     (the rule itself; the Python tests check that rule against the dense references).
// Exit status 0 when all agree.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "cpu/init_fill.h"
#include "cuda/init_fill.cuh"
#include "shared/init_params.h"
#include "emulate_rng.h"

using namespace zerofwht::init;

namespace {

EmulateRng rng{0x9E3779B97F4A7C15ull};
uint64_t next_u64() { return rng.next_u64(); }
int64_t uniform(int64_t lo, int64_t hi) { return rng.uniform(lo, hi); }

void store_bits(unsigned char* base, int64_t index, int eb, uint64_t bits) {
  std::memcpy(base + index * eb, &bits, eb);  // little-endian: the low eb bytes
}

struct Case {
  int eb, dim, kind, mode;
  int64_t full[kMaxDims], size[kMaxDims], offset[kMaxDims], stride[kMaxDims];
  int64_t storage_offset, buffer_elems;
};

Case make_case() {
  Case c{};
  const int ebs[3] = {2, 4, 8};
  c.eb = ebs[uniform(0, 2)];
  c.dim = static_cast<int>(uniform(2, 5));
  c.kind = static_cast<int>(uniform(0, kNumKinds - 1));
  c.mode = static_cast<int>(uniform(0, 1));
  for (int d = 0; d < c.dim; ++d) {
    c.full[d] = d < 2 ? uniform(1, 40) : uniform(1, 5);
    if (d < 2 && uniform(0, 5) == 0) c.full[d] = uniform(1, 300);
    c.size[d] = uniform(1, c.full[d]);
    c.offset[d] = uniform(0, c.full[d] - c.size[d]);
  }
  int64_t elems = 1;
  for (int d = 0; d < c.dim; ++d) elems *= c.size[d];
  if (elems > 40000) c.size[0] = 1;  // keep cases small
  // memory layout: a random permutation of the dims over padded sizes
  int perm[kMaxDims];
  for (int d = 0; d < c.dim; ++d) perm[d] = d;
  if (uniform(0, 2) == 0)
    for (int d = c.dim - 1; d > 0; --d) {
      const int k = static_cast<int>(uniform(0, d));
      const int t = perm[d];
      perm[d] = perm[k];
      perm[k] = t;
    }
  int64_t step = 1;
  for (int k = c.dim - 1; k >= 0; --k) {
    const int d = perm[k];
    c.stride[d] = step;
    step *= c.size[d] + (uniform(0, 3) == 0 ? uniform(1, 3) : 0);
  }
  c.storage_offset = uniform(0, 3);
  c.buffer_elems = c.storage_offset + step + 8;
  return c;
}

bool run_case(const Case& c, int index) {
  const size_t bytes = static_cast<size_t>(c.buffer_elems) * c.eb;
  std::vector<unsigned char> emu(bytes, 0xAB), cpu(bytes, 0xAB), naive(bytes, 0xAB);
  InitParams p{};
  p.elem_bytes = c.eb;
  p.kind = static_cast<Kind>(c.kind);
  const uint64_t mask = c.eb == 8 ? ~0ull : ((1ull << (8 * c.eb)) - 1);
  p.pos_bits = (next_u64() & mask) | 1;
  p.neg_bits = ((next_u64() & mask) | 2) & ~1ull;
  if (const char* err = build_layout(c.dim, c.size, c.stride, c.offset, c.full,
                                     static_cast<TapMode>(c.mode), &p)) {
    std::printf("case %d: build_layout: %s\n", index, err);
    return false;
  }
  p.w = emu.data() + c.storage_offset * c.eb;
  const int sm_counts[4] = {1, 2, 7, 132};  // small counts: many grid-stride iterations
  cuda::emulate_init_fill(p, sm_counts[index % 4]);
  p.w = cpu.data() + c.storage_offset * c.eb;
  const cpu::FillPlan plan = cpu::make_plan(p);
  cpu::fill_pieces(p, plan, 0, plan.pieces);
  // naive: every local multi-index, its global index, the rule
  InitParams q = p;  // logical origin / R / C / tap_centre from build_layout
  int64_t idx[kMaxDims] = {0};
  int64_t total = 1;
  for (int d = 0; d < c.dim; ++d) total *= c.size[d];
  for (int64_t e = 0; e < total; ++e) {
    int64_t rest = e, mem = c.storage_offset;
    for (int d = c.dim - 1; d >= 0; --d) {
      idx[d] = rest % c.size[d];
      rest /= c.size[d];
      mem += idx[d] * c.stride[d];
    }
    int64_t g[kMaxDims];
    for (int d = 0; d < c.dim; ++d) g[d] = c.offset[d] + idx[d];
    int64_t row = g[0], col = 0, tap = 0, centre = 0;
    if (c.mode == 0 || c.dim == 2) {
      for (int d = 1; d < c.dim; ++d) col = col * c.full[d] + g[d];
    } else {
      col = g[1];
      for (int d = 2; d < c.dim; ++d) {
        tap = tap * c.full[d] + g[d];
        centre = centre * c.full[d] + c.full[d] / 2;
      }
    }
    q.tap_centre = centre;
    store_bits(naive.data(), mem, c.eb, element_bits(q, row, col, tap));
  }
  const bool ok_emu = std::memcmp(emu.data(), naive.data(), bytes) == 0;
  const bool ok_cpu = std::memcmp(cpu.data(), naive.data(), bytes) == 0;
  if (!ok_emu || !ok_cpu) {
    std::printf("case %d MISMATCH (cuda-emulation %s, cpu %s): elem %d bytes, kind %d, mode %d, full (",
                index, ok_emu ? "ok" : "WRONG", ok_cpu ? "ok" : "WRONG", c.eb, c.kind, c.mode);
    for (int d = 0; d < c.dim; ++d) std::printf("%lld ", (long long)c.full[d]);
    std::printf("), size (");
    for (int d = 0; d < c.dim; ++d) std::printf("%lld ", (long long)c.size[d]);
    std::printf("), offset (");
    for (int d = 0; d < c.dim; ++d) std::printf("%lld ", (long long)c.offset[d]);
    std::printf("), stride (");
    for (int d = 0; d < c.dim; ++d) std::printf("%lld ", (long long)c.stride[d]);
    std::printf("), storage offset %lld\n", (long long)c.storage_offset);
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const int cases = argc > 1 ? std::atoi(argv[1]) : 3000;
  int bad = 0;
  for (int i = 0; i < cases; ++i) bad += !run_case(make_case(), i);
  std::printf("init_cuda_emulate: %d cases, %d mismatches\n", cases, bad);
  return bad ? 1 : 0;
}
