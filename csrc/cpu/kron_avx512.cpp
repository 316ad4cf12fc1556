// avx512 variant of the Kronecker-transform CPU kernel (kron.h): the same target pragma and macros as
// fwht_avx512.cpp, then the power-of-two kernel body (fwht_impl.h) and the Kronecker body
// (kron_impl.h). Only called after CPUID says the CPU has these instructions (kron_kernels()).
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
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,bmi,bmi2,popcnt")
#define ZF_ISA_NS avx512
#define ZF_ISA_NAME "avx512"
#define ZF_VEC_BYTES 64
#define ZF_STREAM_F32(p, v) _mm512_stream_ps((p), (v))
#define ZF_STREAM_F64(p, v) _mm512_stream_pd((p), (v))
#define ZF_SFENCE() _mm_sfence()
#define ZF_F16_LOAD(p) _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)))
#define ZF_F16_STORE(p, v) _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtps_ph((__m512)(v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC))
#define ZF_RADIX_LOG2 4
#include "cpu/fwht_impl.h"
#include "cpu/kron_impl.h"
#pragma GCC pop_options

namespace zerofwht {
namespace cpu {
const KronTable* kron_kernels_avx512() { return &avx512::kKronTable; }
}  // namespace cpu
}  // namespace zerofwht
#else
namespace zerofwht {
namespace cpu {
const KronTable* kron_kernels_avx512() { return nullptr; }
}  // namespace cpu
}  // namespace zerofwht
#endif
