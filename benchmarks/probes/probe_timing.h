// Timing helpers shared by the probes in this folder (each probe is still one file to compile:
// the include is found next to it).
#ifndef ZEROFWHT_PROBE_TIMING_H
#define ZEROFWHT_PROBE_TIMING_H
#include <stdlib.h>
#include <time.h>

// Seconds on the monotonic clock.
static inline double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}
static inline int by_value(const void* a, const void* b) {
  double d = *(const double*)a - *(const double*)b;
  return d < 0 ? -1 : d > 0;
}
// The median of t[0..n) (n odd); sorts t.
static inline double median(double* t, int n) {
  qsort(t, n, sizeof(double), by_value);
  return t[n / 2];
}
#endif
