// Can the read for ownership of an out-of-place output be avoided on Intel without sending the
// output past the caches? y = 2x over 2^22 fp32 elements (16 MB in, 16 MB out), the same x and y
// on every repetition, 16 KB chunks split over OpenMP threads, median of 31 repetitions:
//   plain            ordinary stores (each output line read for ownership first);
//   nt               non-temporal stores;
//   stosb+plain      `rep stosb` zeroes each output chunk first (fast-string stores may claim whole
//                    lines without reading them), then ordinary stores;
//   movsb+inplace    `rep movsb` copies each input chunk into the output, which is then doubled in
//                    place (out of place as a copy plus an in-place transform);
//   inplace(refill)  x copied into y untimed before each repetition (peer_bench's in-place
//                    protocol), then y doubled in place.
// docs/cpu_tuning_log.md ("2026-12-06") quotes its output: neither prefill saved anything.
//
//   gcc -O2 -fopenmp benchmarks/probes/store_prefill.c -o /tmp/store_prefill
//   OMP_NUM_THREADS=1 /tmp/store_prefill; OMP_NUM_THREADS=2 /tmp/store_prefill
//
// Needs an x86-64 CPU with AVX-512F.
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "probe_timing.h"

#define N (1 << 22)
#define REPS 31
#define CHUNK 4096  // elements


enum { PLAIN, NT, STOSB_PLAIN, MOVSB_INPLACE, INPLACE, MODES };

__attribute__((target("avx512f"))) static void run(const float* x, float* y, int mode) {
#pragma omp parallel for schedule(static)
  for (long b = 0; b < N; b += CHUNK) {
    if (mode == STOSB_PLAIN) {
      size_t n = CHUNK * sizeof(float);
      void* d = y + b;
      __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(0) : "memory");
    }
    if (mode == MOVSB_INPLACE) {
      size_t n = CHUNK * sizeof(float);
      void* d = y + b;
      const void* s = x + b;
      __asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
    }
    const float* src = (mode == MOVSB_INPLACE || mode == INPLACE) ? y : x;
    for (long i = b; i < b + CHUNK; i += 16) {
      __m512 v = _mm512_load_ps(src + i);
      v = _mm512_add_ps(v, v);
      if (mode == NT) _mm512_stream_ps(y + i, v);
      else _mm512_store_ps(y + i, v);
    }
  }
  _mm_sfence();
}

int main(void) {
  float* x = aligned_alloc(64, N * sizeof(float));
  float* y = aligned_alloc(64, N * sizeof(float));
  for (long i = 0; i < N; i++) x[i] = i * 1e-3f, y[i] = 1;
  const char* names[MODES] = {"plain", "nt", "stosb+plain", "movsb+inplace", "inplace(refill)"};
  for (int mode = 0; mode < MODES; mode++) {
    double t[REPS];
    for (int r = 0; r < REPS; r++) {
      if (mode == INPLACE) memcpy(y, x, N * sizeof(float));
      double t0 = now();
      run(x, y, mode);
      t[r] = now() - t0;
    }
        printf("%-16s %.3f ns per element\n", names[mode], median(t, REPS) / N * 1e9);
  }
  return 0;
}
