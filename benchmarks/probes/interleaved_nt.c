// Do non-temporal stores stay cheap when they go to several streams at once, as in the second sweep
// of a blocked row (the stages across blocks write one line in each of 8 blocks in turn)? One
// thread, y = 2x over 2^22 fp32 elements (16 MB), the same x and y on every repetition, median of
// 21 repetitions, plain and non-temporal stores:
//   interleaved  rows of 8 segments of 512 KB: for each 64-byte column, one vector in each segment
//                in turn (8 streams; with 1 segment of 4 MB, one stream);
//   grouped      like the kernel's column groups: 1024 columns of all segments gathered into an L1
//                buffer, then written out segment by segment.
// docs/cpu_tuning_log.md ("2026-12-06") quotes its output.
//
//   gcc -O2 benchmarks/probes/interleaved_nt.c -o /tmp/interleaved_nt && /tmp/interleaved_nt
//
// Needs an x86-64 CPU with AVX-512F.
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "probe_timing.h"

#define N (1 << 22)
#define REPS 21
#define GROUP 1024  // columns per gathered group, elements


__attribute__((target("avx512f"))) static void put(float* p, __m512 v, int nt) {
  if (nt) _mm512_stream_ps(p, v);
  else _mm512_store_ps(p, v);
}

// seg: elements per segment; segs: segments per row.
__attribute__((target("avx512f"))) static void interleaved(const float* x, float* y, int nt, long seg, int segs) {
  for (long r = 0; r < N; r += seg * segs)
    for (long c = 0; c < seg; c += 16)
      for (int k = 0; k < segs; k++) {
        const long i = r + k * seg + c;
        const __m512 v = _mm512_load_ps(x + i);
        put(y + i, _mm512_add_ps(v, v), nt);
      }
  _mm_sfence();
}

__attribute__((target("avx512f"))) static void grouped(const float* x, float* y, int nt, long seg, int segs) {
  static float buf[8 * GROUP] __attribute__((aligned(64)));
  for (long r = 0; r < N; r += seg * segs)
    for (long c0 = 0; c0 < seg; c0 += GROUP) {
      for (int k = 0; k < segs; k++)
        for (long c = 0; c < GROUP; c += 16) {
          const __m512 v = _mm512_load_ps(x + r + k * seg + c0 + c);
          _mm512_store_ps(buf + k * GROUP + c, _mm512_add_ps(v, v));
        }
      for (int k = 0; k < segs; k++)
        for (long c = 0; c < GROUP; c += 16) put(y + r + k * seg + c0 + c, _mm512_load_ps(buf + k * GROUP + c), nt);
    }
  _mm_sfence();
}

int main(void) {
  float* x = aligned_alloc(64, N * sizeof(float));
  float* y = aligned_alloc(64, N * sizeof(float));
  for (long i = 0; i < N; i++) x[i] = i * 1e-3f, y[i] = 1;
  for (int g = 0; g < 2; g++)
    for (int segs = 1; segs <= 8; segs *= 8)
      for (int nt = 0; nt < 2; nt++) {
        const long seg = segs == 1 ? (1 << 20) : (1 << 17);
        double t[REPS];
        for (int r = 0; r < REPS; r++) {
          double t0 = now();
          if (g) grouped(x, y, nt, seg, segs);
          else interleaved(x, y, nt, seg, segs);
          t[r] = now() - t0;
        }
                printf("%-11s streams=%d %-5s %.3f ns per element\n", g ? "grouped" : "interleaved", segs, nt ? "nt" : "plain",
               median(t, REPS) / N * 1e9);
      }
  return 0;
}
