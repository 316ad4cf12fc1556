// Run-time choice of the CPU kernel variant (torch-free). The best variant the CPU supports is
// used unless the environment variable ZEROFWHT_CPU_ISA (avx512 | avx2 | generic) or set_isa()
// asks for another; asking for one the CPU lacks falls back to the best supported one.
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <unistd.h>

#include "cpu/fwht.h"

namespace zerofwht {
namespace cpu {
namespace {

bool cpu_has(const char* isa) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (std::strcmp(isa, "avx512") == 0)
    return kernels_avx512() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("f16c") && __builtin_cpu_supports("fma");
  if (std::strcmp(isa, "avx2") == 0)
    return kernels_avx2() && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c") && __builtin_cpu_supports("bmi2");
#endif
  return std::strcmp(isa, "generic") == 0;
}

const KernelTable* by_name(const char* name) {
  if (!cpu_has(name)) return nullptr;
  if (std::strcmp(name, "avx512") == 0) return kernels_avx512();
  if (std::strcmp(name, "avx2") == 0) return kernels_avx2();
  return &kernels_generic();
}

const KernelTable* best() {
  for (const char* name : {"avx512", "avx2", "generic"})
    if (const KernelTable* t = by_name(name)) return t;
  return &kernels_generic();
}

std::atomic<const KernelTable*>& current() {
  static std::atomic<const KernelTable*> table{[] {
    const char* env = std::getenv("ZEROFWHT_CPU_ISA");
    const KernelTable* t = (env && *env && std::strcmp(env, "auto") != 0) ? by_name(env) : nullptr;
    return t ? t : best();
  }()};
  return table;
}

}  // namespace

namespace {

// Size in bytes of the cache of this level and type ("Data", "Unified") as Linux's sysfs reports
// it for cpu0 (e.g. "32K"), 0 when unknown. sysconf's L3 figure is not used: in virtual machines
// glibc was seen to report the whole host's L3 (320 MB) where sysfs said 32 MB.
int64_t sysfs_cache_bytes(int level, const char* type) {
  // One line of a sysfs file, without the trailing newline ("" when unreadable).
  auto read = [](int index, const char* name, char* out, size_t size) {
    char path[128];
    std::snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu0/cache/index%d/%s", index, name);
    out[0] = '\0';
    if (std::FILE* f = std::fopen(path, "r")) {
      if (!std::fgets(out, int(size), f)) out[0] = '\0';
      std::fclose(f);
    }
    out[std::strcspn(out, "\n")] = '\0';
  };
  char buf[64];
  for (int index = 0; index < 8; ++index) {
    read(index, "level", buf, sizeof(buf));
    if (!buf[0]) return 0;
    if (std::atoi(buf) != level) continue;
    read(index, "type", buf, sizeof(buf));
    if (std::strcmp(buf, type) != 0) continue;
    read(index, "size", buf, sizeof(buf));
    char* unit = nullptr;
    int64_t bytes = std::strtoll(buf, &unit, 10);
    if (unit && (*unit == 'K' || *unit == 'k')) bytes <<= 10;
    if (unit && (*unit == 'M' || *unit == 'm')) bytes <<= 20;
    return bytes;
  }
  return 0;
}

CpuTuning detect_tuning() {
  CpuTuning t{int64_t(48) << 10, int64_t(2) << 20, 0, false, -1};
  if (const char* e = std::getenv("ZEROFWHT_CPU_STREAM"); e && (*e == '0' || *e == '1')) t.stream_override = *e - '0';
  if (int64_t b = sysfs_cache_bytes(1, "Data")) t.l1d_bytes = b;
#ifdef _SC_LEVEL1_DCACHE_SIZE
  else if (long v = sysconf(_SC_LEVEL1_DCACHE_SIZE); v > 0) t.l1d_bytes = v;
#endif
  if (int64_t b = sysfs_cache_bytes(2, "Unified")) t.l2_bytes = b;
#ifdef _SC_LEVEL2_CACHE_SIZE
  else if (long v = sysconf(_SC_LEVEL2_CACHE_SIZE); v > 0) t.l2_bytes = v;
#endif
  t.l3_bytes = sysfs_cache_bytes(3, "Unified");
  // Implausible readings fall back to the defaults (the plans assume at least these sizes).
  if (t.l1d_bytes < (int64_t(16) << 10) || t.l1d_bytes > (int64_t(1) << 20)) t.l1d_bytes = int64_t(48) << 10;
  if (t.l2_bytes < (int64_t(256) << 10) || t.l2_bytes > (int64_t(64) << 20)) t.l2_bytes = int64_t(2) << 20;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  t.amd = __builtin_cpu_is("amd");
#endif
  return t;
}

}  // namespace

const CpuTuning& cpu_tuning() {
  static const CpuTuning t = detect_tuning();
  return t;
}

bool fold_padding(FwhtParams& p) {
  if (p.lg_copies != 0) return true;  // folded already
  int64_t m = 16;
  while (m < p.d_in) m *= 2;
  const int64_t compute_bytes = p.dtype == DType::kFloat64 ? 8 : 4;
  int64_t piece_bytes = 1;  // as FwhtPlan::piece (make_plan_t): the largest power of two <= 2/3 of L1d
  while (piece_bytes * 2 <= cpu_tuning().l1d_bytes * 2 / 3) piece_bytes *= 2;
  if (m * 2 > p.n || m * compute_bytes > piece_bytes) return false;
  int lg = 0;
  while ((m << lg) < p.n) ++lg;
  p.n = m;
  p.lg_copies = lg;
  return true;
}

const KernelTable& active_kernels() { return *current().load(std::memory_order_relaxed); }

const char* supported_isas() {
  static const std::string names = [] {
    std::string s;
    for (const char* name : {"avx512", "avx2", "generic"})
      if (cpu_has(name)) {
        if (!s.empty()) s += ',';
        s += name;
      }
    return s;
  }();
  return names.c_str();
}

bool set_isa(const char* name) {
  const KernelTable* t = std::strcmp(name, "auto") == 0 ? best() : by_name(name);
  if (!t) return false;
  current().store(t, std::memory_order_relaxed);
  return true;
}

}  // namespace cpu
}  // namespace zerofwht
