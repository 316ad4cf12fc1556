// The Kronecker-transform CPU kernel's plan (the K x K stage's tables, from the base) and the
// choice of its instruction-set variant, which follows the power-of-two kernel's (torch-free).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cpu/kron.h"

namespace zerofwht {
namespace cpu {
namespace {

// Table entries of all groups together, at most: 384 vectors of 64 bytes (24 KB) with AVX-512.
// A bound on the group size that depends on K alone, so that the sums (and their rounding) are
// the same on every CPU and instruction set.
constexpr int64_t kMaxTableEntries = 384;
// Outputs at least this large are written with non-temporal stores (as the power-of-two kernel).
constexpr int64_t kStreamBytes = int64_t(32) << 20;

// Group size for a base of order K: fewest vector operations per column vector, counting the
// table (2^g - 2 additions and 2^(g-1) stores per group) and the K * groups additions that use it.
int group_size(int64_t K) {
  int best = 1;
  int64_t best_cost = -1;
  for (int g = 1; g <= 6 && g <= K; ++g) {
    const int64_t groups = (K + g - 1) / g, entries = int64_t(1) << (g - 1);
    if (g > 1 && groups * entries > kMaxTableEntries) break;
    const int64_t cost = groups * ((int64_t(2) << (g - 1)) - 2 + entries) + K * groups;
    if (best_cost < 0 || cost < best_cost) {
      best = g;
      best_cost = cost;
    }
  }
  return best;
}

}  // namespace

bool kron_plan(const KronParams& p, const float* base, int threads, KronPlan* plan) {
  const int64_t K = p.K;
  for (int64_t i = 0; i < K * K; ++i)
    if (base[i] != 1.0f && base[i] != -1.0f) return false;
  KronPlan& pl = *plan;
  pl.g = group_size(K);
  pl.groups = int((K + pl.g - 1) / pl.g);
  pl.entries = 1 << (pl.g - 1);
  pl.zero_entry = pl.groups * pl.entries;
  pl.stride = pl.groups + 2;
  pl.terms.assign(size_t(K * pl.stride), pl.zero_entry);
  pl.counts.assign(size_t(2 * K), 0);
  std::vector<int32_t> pos, neg;
  for (int64_t r = 0; r < K; ++r) {
    const float* h = base + r * K;
    pos.clear();
    neg.clear();
    for (int q = 0; q < pl.groups; ++q) {
      const int64_t i0 = int64_t(q) * pl.g, gs = std::min<int64_t>(pl.g, K - i0);
      const float sign = h[i0];
      int32_t pattern = 0;
      for (int64_t k = 1; k < gs; ++k)
        if (h[i0 + k] != sign) pattern |= int32_t(1) << (k - 1);
      (sign > 0 ? pos : neg).push_back(q * pl.entries + pattern);
    }
    int32_t* t = pl.terms.data() + r * pl.stride;
    if (!pos.empty()) t[0] = pos[0];
    if (!neg.empty()) t[1] = neg[0];
    int j = 2;
    for (size_t k = 1; k < pos.size(); ++k) t[j++] = pos[k];
    for (size_t k = 1; k < neg.size(); ++k) t[j++] = neg[k];
    pl.counts[2 * r] = pos.empty() ? 0 : int32_t(pos.size() - 1);
    pl.counts[2 * r + 1] = neg.empty() ? 0 : int32_t(neg.size() - 1);
  }
  // Non-temporal output stores, by the power-of-two kernel's rule (make_plan_t in fwht_impl.h):
  // outputs far beyond the caches, or, on one thread, input and output together filling the L3.
  const CpuTuning& tune = cpu_tuning();
  const int64_t esz = p.dtype == DType::kFloat64 ? 8 : p.dtype == DType::kFloat32 ? 4 : 2;
  const int64_t out_bytes = p.rows * p.d_out * esz, in_bytes = p.rows * p.d_in * esz;
  pl.stream = out_bytes >= kStreamBytes || (threads == 1 && tune.l3_bytes > 0 && in_bytes + out_bytes >= tune.l3_bytes);
  if (tune.stream_override >= 0) pl.stream = tune.stream_override == 1;
  pl.prefetch_next_row = p.d_in * esz > kNextRowPrefetchBytes;
  return true;
}

const KronTable& kron_kernels() {
  const char* isa = active_kernels().isa;
  if (std::strcmp(isa, "avx512") == 0 && kron_kernels_avx512()) return *kron_kernels_avx512();
  if (std::strcmp(isa, "avx2") == 0 && kron_kernels_avx2()) return *kron_kernels_avx2();
  return kron_kernels_generic();
}

}  // namespace cpu
}  // namespace zerofwht
