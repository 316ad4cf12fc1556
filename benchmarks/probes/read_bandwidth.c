// Read bandwidth of one core over buffers of 2 ... 64 MB: shows how much of the last-level cache
// one core really gets (on a shared virtual machine it can be far less than sysfs reports).
// docs/cpu_tuning_log.md ("Afternoon 2026-11-29") quotes its output.
//
//   gcc -O2 -mavx512f benchmarks/probes/read_bandwidth.c -o /tmp/read_bandwidth && /tmp/read_bandwidth
//   (-mavx2 -DUSE_AVX2 on CPUs without AVX-512)
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static int by_value(const void* a, const void* b) {
  const double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

int main(void) {
  enum { kPasses = 15 };
  for (int mb = 2; mb <= 64; mb *= 2) {
    const size_t n = (size_t)mb << 18;  // floats
    float* a = aligned_alloc(64, n * sizeof(float));
    for (size_t i = 0; i < n; ++i) a[i] = 1.0f;  // touch every page, warm what fits
    double t[kPasses];
    float sink = 0.0f;
    for (int r = 0; r < kPasses; ++r) {
      const double t0 = now_s();
#ifdef USE_AVX2
      __m256 s0 = _mm256_setzero_ps(), s1 = s0;  // two sums: loads, not adds, set the pace
      for (size_t i = 0; i < n; i += 16) {
        s0 = _mm256_add_ps(s0, _mm256_load_ps(a + i));
        s1 = _mm256_add_ps(s1, _mm256_load_ps(a + i + 8));
      }
      float lanes[8];
      _mm256_storeu_ps(lanes, _mm256_add_ps(s0, s1));
      sink += lanes[0];
#else
      __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
      for (size_t i = 0; i < n; i += 64) {
        s0 = _mm512_add_ps(s0, _mm512_load_ps(a + i));
        s1 = _mm512_add_ps(s1, _mm512_load_ps(a + i + 16));
        s2 = _mm512_add_ps(s2, _mm512_load_ps(a + i + 32));
        s3 = _mm512_add_ps(s3, _mm512_load_ps(a + i + 48));
      }
      sink += _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
#endif
      t[r] = now_s() - t0;
    }
    qsort(t, kPasses, sizeof(double), by_value);
    printf("%3d MB: %6.1f GB/s (median of %d passes), best %6.1f GB/s\n", mb,
           n * sizeof(float) / t[kPasses / 2] / 1e9, kPasses, n * sizeof(float) / t[0] / 1e9);
    free(a);
    if (sink == 42.0f) puts("");  // keep the sums alive
  }
  return 0;
}
