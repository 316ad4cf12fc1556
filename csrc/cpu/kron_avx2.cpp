// avx2 variant of the Kronecker-transform CPU kernel (kron.h): the same target pragma and macros as
// fwht_avx2.cpp, then fwht_impl.h and kron_impl.h. Only called after CPUID says the CPU has them.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

#include "cpu/kron.h"

#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,bmi,bmi2,popcnt")
#define ZF_ISA_NS avx2
#define ZF_ISA_NAME "avx2"
#define ZF_VEC_BYTES 32
#define ZF_STREAM_F32(p, v) _mm256_stream_ps((p), (v))
#define ZF_STREAM_F64(p, v) _mm256_stream_pd((p), (v))
#define ZF_SFENCE() _mm_sfence()
#define ZF_F16_LOAD(p) _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)))
#define ZF_F16_STORE(p, v) _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph((__m256)(v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC))
#define ZF_RADIX_LOG2 3
#include "cpu/fwht_impl.h"
#include "cpu/kron_impl.h"
#pragma GCC pop_options

namespace zerofwht {
namespace cpu {
const KronTable* kron_kernels_avx2() { return &avx2::kKronTable; }
}  // namespace cpu
}  // namespace zerofwht
#else
namespace zerofwht {
namespace cpu {
const KronTable* kron_kernels_avx2() { return nullptr; }
}  // namespace cpu
}  // namespace zerofwht
#endif
