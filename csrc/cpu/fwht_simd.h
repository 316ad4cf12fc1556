// SIMD types of the CPU kernels: the vector types (GCC vector extensions, ZF_VEC_BYTES wide), the
// 16-bit float storage types, unaligned vector loads / stores, and Storage<T>: how a vector of W
// elements of a stored type T is loaded into and stored from the compute type (fp32 for the half
// types), with the ISA's conversions and non-temporal stores where it has them.
// A fragment of fwht_impl.h, included inside its per-ISA namespace (once per instruction set), so
// that the same source compiles to avx512, avx2 and generic code; not a header of its own.
#ifndef ZF_ISA_NS
#error "a fragment of cpu/fwht_impl.h: include that file, not this one"
#endif

typedef float vf __attribute__((vector_size(ZF_VEC_BYTES)));
typedef double vd __attribute__((vector_size(ZF_VEC_BYTES)));
typedef uint32_t vu32 __attribute__((vector_size(ZF_VEC_BYTES)));
typedef _Float16 vh __attribute__((vector_size(ZF_VEC_BYTES / 2)));  // as many lanes as vf
typedef uint16_t vu16 __attribute__((vector_size(ZF_VEC_BYTES / 2)));

struct F16 { uint16_t bits; };   // IEEE binary16, as c10::Half stores it
struct BF16 { uint16_t bits; };  // bfloat16, as c10::BFloat16 stores it

// Unaligned vector load / store through a vector type of alignment 1 (not memcpy: a char-typed
// copy may alias anything, which makes the compiler reload every pointer after each store).
template <class V>
struct Unaligned {
  typedef V type __attribute__((aligned(1)));
};
template <class V, class P>
ZF_INLINE V loadu(const P* p) {
  return *reinterpret_cast<const typename Unaligned<V>::type*>(p);
}
template <class V, class P>
ZF_INLINE void storeu(P* p, const V& v) {
  *reinterpret_cast<typename Unaligned<V>::type*>(p) = v;
}

// ---- storage types: how a vector of W elements is loaded / stored in the compute type ----------
template <class T> struct Storage;
inline bool vector_aligned(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & (ZF_VEC_BYTES - 1)) == 0;
}

// stream(): a non-temporal store where the ISA has one and p is aligned, else a plain store.
template <> struct Storage<float> {
  using C = float;
  using V = vf;
  static ZF_INLINE V load(const float* p) { return loadu<V>(p); }
  static ZF_INLINE void store(float* p, V v) { storeu(p, v); }
  static ZF_INLINE void stream(float* p, V v) {
#ifdef ZF_STREAM_F32
    if (vector_aligned(p)) { ZF_STREAM_F32(p, v); return; }
#endif
    storeu(p, v);
  }
};
template <> struct Storage<double> {
  using C = double;
  using V = vd;
  static ZF_INLINE V load(const double* p) { return loadu<V>(p); }
  static ZF_INLINE void store(double* p, V v) { storeu(p, v); }
  static ZF_INLINE void stream(double* p, V v) {
#ifdef ZF_STREAM_F64
    if (vector_aligned(p)) { ZF_STREAM_F64(p, v); return; }
#endif
    storeu(p, v);
  }
};
// fp16 <-> fp32 through the ISA's whole-register conversions where it names them (ZF_F16_LOAD /
// ZF_F16_STORE): GCC lowers __builtin_convertvector of a 16-lane _Float16 vector to 4-lane xmm
// conversions and shuffles, which left fp16 transforms 2.3-3.3x slower than bf16 (Zen 4, one
// thread, 2^22 elements per call, n = 2^8: 1.05 against 0.34 ns per element). Both round to
// nearest even, like c10::Half, and give the same bits.
template <> struct Storage<F16> {
  using C = float;
  using V = vf;
  static ZF_INLINE V load(const F16* p) {
#ifdef ZF_F16_LOAD
    return (V)ZF_F16_LOAD(p);
#else
    return __builtin_convertvector(loadu<vh>(p), vf);
#endif
  }
  // Conversion in the current rounding mode: round to nearest even, like c10::Half.
  static ZF_INLINE void store(F16* p, V v) {
#ifdef ZF_F16_STORE
    ZF_F16_STORE(p, v);
#else
    storeu(p, __builtin_convertvector(v, vh));
#endif
  }
  static ZF_INLINE void stream(F16* p, V v) { store(p, v); }
};
template <> struct Storage<BF16> {
  using C = float;
  using V = vf;
  static ZF_INLINE V load(const BF16* p) {
    vu32 w = __builtin_convertvector(loadu<vu16>(p), vu32) << 16;
    return (vf)w;
  }
  // Round to nearest even, NaN -> 0x7fc0: exactly c10::BFloat16's round_to_nearest_even.
  static ZF_INLINE void store(BF16* p, V v) {
    vu32 b = (vu32)v;
    vu32 rounded = (b + ((b >> 16) & 1u) + 0x7fffu) >> 16;
    vu32 nan = (vu32)(v != v);  // all ones in NaN lanes
    vu32 r = (rounded & ~nan) | (nan & 0x7fc0u);
    storeu(p, __builtin_convertvector(r, vu16));
  }
  static ZF_INLINE void stream(BF16* p, V v) { store(p, v); }
};
