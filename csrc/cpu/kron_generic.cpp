// Portable variant of the Kronecker-transform CPU kernel (kron.h): 16-byte vectors, the build's
// baseline target, as fwht_generic.cpp. Always present.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>  // SSE2 is part of the x86-64 baseline
#endif

#include "cpu/kron.h"

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
#include "cpu/kron_impl.h"

namespace zerofwht {
namespace cpu {
const KronTable& kron_kernels_generic() { return generic::kKronTable; }
}  // namespace cpu
}  // namespace zerofwht
