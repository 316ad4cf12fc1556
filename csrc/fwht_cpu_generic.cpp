// Portable variant of the CPU kernels: 16-byte vectors (SSE2 on x86-64, NEON on AArch64), compiled
// for the build's baseline target. Always present; used when the CPU has neither AVX2 nor AVX-512.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

#include "fwht_cpu.h"

#define ZF_ISA_NS generic
#define ZF_ISA_NAME "generic"
#define ZF_VEC_BYTES 16
#define ZF_RADIX_LOG2 3
#include "fwht_cpu_impl.h"

namespace zerofwht {
namespace cpu {
const KernelTable& kernels_generic() { return generic::kTable; }
}  // namespace cpu
}  // namespace zerofwht
