// What the memory side of a 16 MB transform costs under each protocol, with no transform at all:
// y = 2x over 2^22 fp32 elements (16 MB in, 16 MB out), OpenMP threads, the same x and y on every
// repetition (steady state, as peer_bench times an out-of-place call), median of 21 repetitions:
//   plain    out of place, ordinary stores (each output line read for ownership first);
//   nt       out of place, non-temporal stores (no read for ownership, bypass the caches);
//   inplace  x copied into a buffer (untimed, as peer_bench refills an in-place peer's buffer),
//            then the buffer doubled in place.
// docs/cpu_tuning_log.md ("Late evening 2026-11-29") quotes its output.
//
//   gcc -O2 -fopenmp benchmarks/probes/store_kinds.c -o /tmp/store_kinds
//   OMP_NUM_THREADS=1 /tmp/store_kinds; OMP_NUM_THREADS=2 /tmp/store_kinds
//
// Needs a CPU with AVX-512F.
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "probe_timing.h"

#define N (1 << 22)
#define REPS 21


__attribute__((target("avx512f"))) static void doubled(const float* x, float* y, int nt) {
#pragma omp parallel for schedule(static)
  for (long b = 0; b < N; b += 4096) {  // 16 KB chunks
    for (long i = b; i < b + 4096; i += 16) {
      __m512 v = _mm512_loadu_ps(x + i);
      v = _mm512_add_ps(v, v);
      if (nt) _mm512_stream_ps(y + i, v);
      else _mm512_store_ps(y + i, v);
    }
  }
  if (nt) _mm_sfence();
}

int main(void) {
  float* x = aligned_alloc(4096, (size_t)N * 4);
  float* y = aligned_alloc(4096, (size_t)N * 4);
  float* buf = aligned_alloc(4096, (size_t)N * 4);
  for (long i = 0; i < N; i++) x[i] = (float)i * 1e-6f, y[i] = 0, buf[i] = 0;
  const char* names[] = {"plain", "nt", "inplace"};
  for (int round = 0; round < 3; round++) {
    for (int mode = 0; mode < 3; mode++) {
      double t[REPS];
      for (int r = 0; r < REPS; r++) {
        if (mode == 2) memcpy(buf, x, (size_t)N * 4);
        double t0 = now();
        if (mode == 2) doubled(buf, buf, 0);
        else doubled(x, y, mode == 1);
        t[r] = now() - t0;
      }
      const double med = median(t, REPS);  // sorts t: t[0] is then the minimum
      printf("threads %d  %-8s median %.3f  min %.3f ns per element\n", omp_get_max_threads(), names[mode],
             med * 1e9 / N, t[0] * 1e9 / N);
    }
  }
  return 0;
}
