// The row input / output adapters of the CPU kernels: what a pass loads and stores, separated
// from the butterflies. Conversion to and from the compute type, the implicit zero padding past
// d_in, truncation at d_out, the scale at the final store; short rows packed side by side as one
// array; column groups of the stages across blocks; row offsets from a RowLayout.
// A fragment of fwht_impl.h, included inside its per-ISA namespace (once per instruction set);
// not a header of its own.
#ifndef ZF_ISA_NS
#error "a fragment of cpu/fwht_impl.h: include that file, not this one"
#endif

// ---- the row I/O: conversion, implicit zero padding, truncation, scale -------------------------
template <class T>
struct RowLoad {  // reads lanes [pos, pos + W) of a row holding `valid` elements, zero beyond
  using S = Storage<T>;
  using V = typename S::V;
  static constexpr int W = Lanes<typename S::C>::W;
  const T* x;
  int64_t valid;
  bool full(int64_t, int64_t hi) const { return hi <= valid; }
  template <bool kCheck>
  ZF_INLINE V get(int64_t pos) const {
    if (!kCheck || pos + W <= valid) return S::load(x + pos);
    if (pos >= valid) return V{};
    T tmp[W];
    std::memset(static_cast<void*>(tmp), 0, sizeof(tmp));
    std::memcpy(static_cast<void*>(tmp), x + pos, sizeof(T) * size_t(valid - pos));
    return S::load(tmp);
  }
};

template <class T>
struct RowStore {  // writes lanes [pos, pos + W) times scale, dropping positions >= limit
  using S = Storage<T>;
  using C = typename S::C;
  using V = typename S::V;
  static constexpr int W = Lanes<C>::W;
  T* y;
  int64_t limit;
  C scale;
  bool scaled;  // scale != 1 (multiplying by 1 is exact, but costs an instruction per vector)
  bool stream;  // non-temporal stores (see FwhtPlan::stream)
  bool full(int64_t, int64_t hi) const { return hi <= limit; }
  template <bool kCheck>
  ZF_INLINE void put(int64_t pos, V v) const {
    if (scaled) v = v * scale;
    if (!kCheck || pos + W <= limit) {
      if (stream) S::stream(y + pos, v);
      else S::store(y + pos, v);
    } else if (pos < limit) {
      T tmp[W];
      S::store(tmp, v);
      std::memcpy(static_cast<void*>(y + pos), tmp, sizeof(T) * size_t(limit - pos));
    }
  }
};

// Rows of n >= W elements, evenly strided, seen as one array of rows * n positions laid side by
// side (position i: row i >> lg_n, column i & (n - 1)); each vector lies inside one row. Lets short
// rows with padding (d_in < n), truncation (d_out < n) or gaps between rows be done a chunk of rows
// per call, like whole dense rows (Impl::packed), instead of one row at a time.
template <class T>
struct RowsLoad {
  const T* x;
  int64_t stride;  // elements from one row's start to the next
  int64_t valid;   // elements read per row (d_in); zero beyond
  int lg_n;
  ZF_INLINE RowLoad<T> row(int64_t pos) const { return RowLoad<T>{x + (pos >> lg_n) * stride, valid}; }
  // [lo, hi) inside one row and inside its data
  bool full(int64_t lo, int64_t hi) const {
    return (lo >> lg_n) == ((hi - 1) >> lg_n) && ((hi - 1) & ((int64_t(1) << lg_n) - 1)) < valid;
  }
  template <bool kCheck>
  ZF_INLINE auto get(int64_t pos) const {
    return row(pos).template get<kCheck>(pos & ((int64_t(1) << lg_n) - 1));
  }
};
template <class T>
struct RowsStore {
  using C = typename Storage<T>::C;
  T* y;
  int64_t stride;  // elements from one row's start to the next
  int64_t limit;   // elements written per row (d_out); positions beyond are dropped
  int lg_n;
  C scale;
  bool scaled, stream;
  ZF_INLINE RowStore<T> row(int64_t pos) const {
    return RowStore<T>{y + (pos >> lg_n) * stride, limit, scale, scaled, stream};
  }
  bool full(int64_t lo, int64_t hi) const {
    return (lo >> lg_n) == ((hi - 1) >> lg_n) && ((hi - 1) & ((int64_t(1) << lg_n) - 1)) < limit;
  }
  template <bool kCheck, class V>
  ZF_INLINE void put(int64_t pos, V v) const {
    row(pos).template put<kCheck>(pos & ((int64_t(1) << lg_n) - 1), v);
  }
};

// Column-group addressing for the stages across blocks: index i of the gathered group
// (row r = i / group, column c = i % group) is position r * block + c of the row, relative to
// the group's first column.
struct GroupMap {
  int lg_group, lg_block;
  ZF_INLINE int64_t operator()(int64_t i) const {
    return ((i >> lg_group) << lg_block) + (i & ((int64_t(1) << lg_group) - 1));
  }
};
template <class IO>
struct MappedLoad {
  IO io;
  GroupMap map;
  bool full(int64_t lo, int64_t hi) const { return io.full(map(lo), map(hi - 1) + 1); }
  template <bool kCheck>
  ZF_INLINE auto get(int64_t i) const { return io.template get<kCheck>(map(i)); }
};
template <class IO>
struct MappedStore {
  IO io;
  GroupMap map;
  bool full(int64_t lo, int64_t hi) const { return io.full(map(lo), map(hi - 1) + 1); }
  template <bool kCheck, class V>
  ZF_INLINE void put(int64_t i, V v) const { io.template put<kCheck>(map(i), v); }
};

template <class T>
inline int64_t lines_of(int64_t elems) {  // 64-byte lines spanned by elems elements from a line start
  return (elems * int64_t(sizeof(T)) + 63) / 64;
}

inline int64_t row_offset(const RowLayout& l, int64_t r) {
  if (l.ndim == 1) return r * l.strides[0];
  int64_t off = 0;
  for (int k = l.ndim - 1; k >= 0; --k) {
    const int64_t i = r % l.sizes[k];
    r /= l.sizes[k];
    off += i * l.strides[k];
  }
  return off;
}
