// Run-time choice of the CPU kernel variant (torch-free). The best variant the CPU supports is
// used unless the environment variable ZEROFWHT_CPU_ISA (avx512 | avx2 | generic) or set_isa()
// asks for another; asking for one the CPU lacks falls back to the best supported one.
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include "fwht_cpu.h"

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

const KernelTable& active_kernels() { return *current().load(std::memory_order_relaxed); }

const char* supported_isas() {
  static const std::string names = [] {
    std::string s;
    for (const char* name : {"avx512", "avx2", "generic"})
      if (cpu_has(name)) s += (s.empty() ? "" : ",") + std::string(name);
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
