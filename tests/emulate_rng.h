// The seeded generator of the host emulation tests (init_cuda_emulate.cu, fwht_cuda_emulate.cu):
// xorshift64*, so a failing case can be replayed from its seed on any compiler.
#pragma once

#include <cstdint>

struct EmulateRng {
  uint64_t state;
  uint64_t next_u64() {
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545F4914F6CDD1Dull;
  }
  // An integer in [lo, hi].
  int64_t uniform(int64_t lo, int64_t hi) { return lo + static_cast<int64_t>(next_u64() % uint64_t(hi - lo + 1)); }
};
