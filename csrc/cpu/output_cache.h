// The CPU transform's output cache (output_cache.cpp): freed large outputs are kept for reuse so
// that repeated transforms do not page-fault on fresh memory. Limit: ZEROFWHT_CPU_CACHE_MB (default
// 1024; 0 turns the cache off), or cpu_cache_set_limit().
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace zerofwht {

struct CacheStats {
  int64_t cached_bytes;  // bytes held in freed buffers, ready for reuse
  int64_t limit_bytes;   // most bytes kept
  int64_t buffers;       // number of those buffers
  int64_t hits, misses;  // allocations served from the cache / from malloc, since start
};

CacheStats cpu_cache_stats();
void cpu_cache_clear();                    // returns every cached buffer to the system
void cpu_cache_set_limit(int64_t bytes);   // also trims to the new limit

// An uninitialised CPU tensor like at::empty(shape, options); outputs of 1 MB or more come from
// the cache (and are NaN-filled first when ZEROFWHT_CPU_CACHE_POISON=1).
at::Tensor empty_output(at::IntArrayRef shape, const at::TensorOptions& options);

}  // namespace zerofwht
