// Portable variant of the CPU kernels: 16-byte vectors (SSE2 on x86-64, NEON on AArch64), compiled
// for the build's baseline target. Always present; used when the CPU has neither AVX2 nor AVX-512.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>  // SSE2 is part of the x86-64 baseline
#endif

#include "cpu/fwht.h"

#define ZF_ISA_NS generic
#define ZF_ISA_NAME "generic"
#define ZF_VEC_BYTES 16
#if defined(__x86_64__) || defined(_M_X64)
#define ZF_STREAM_F32(p, v) _mm_stream_ps((p), (v))
#define ZF_STREAM_F64(p, v) _mm_stream_pd((p), (v))
#define ZF_SFENCE() _mm_sfence()
#endif
#define ZF_RADIX_LOG2 3
#include "cpu/fwht_impl.h"

namespace zerofwht {
namespace cpu {
const KernelTable& kernels_generic() { return generic::kTable; }
}  // namespace cpu
}  // namespace zerofwht
