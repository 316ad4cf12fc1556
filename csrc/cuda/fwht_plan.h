// Launch shapes and index arithmetic of the CUDA Walsh-Hadamard kernels (fwht.cu): which
// thread holds which element of a row in which phase, and where it sits in shared memory.
// Torch-free and CUDA-free: every function here is __host__ __device__ under nvcc and plain
// inline C++ otherwise, so the host tests (tests/fwht_cuda_emulate.cu) check exactly the
// arithmetic the device runs. Units are elements unless a name says bytes.
//
// ---- The row kernel (one transform of length N = 2^log_n per row, N <= 2^15) --------------------
// A row is held by TPR = N / E threads, E = 2^log_e elements each. Element index bits, low to high:
//     [ e bits : position inside the thread | lane bits (<= 5) | warp bits ]
// Phase A ("contiguous"): thread tr of the row holds elements tr*E + j, j < E (16-byte loads).
//   1. the e bits:    butterflies between registers of the thread;
//   2. the lane bits: butterflies with __shfl_xor_sync between the lanes of the row;
// then, only when the row spans W > 1 warps (lanes = 32),
// Phase B ("columns"): through shared memory every thread takes K = E / W adjacent columns
//   (column = index mod 32E) times all W warp positions: slot w*K + s holds element
//   w*32E + tr*K + s;
//   3. the warp bits: butterflies between registers again; the thread stores its W runs of K
//      elements (a warp writes 32K contiguous elements per run: coalesced).
// Stages run in increasing distance (1, 2, 4, ...), as in the CPU kernel, so fp32/fp64 results are
// bitwise those of the CPU kernel (and of the pure-PyTorch butterfly).
// Several rows share a block when TPR < 256 (rows_per_block = 256 / TPR) so a block has 256 threads.
//
// Shared memory (phase A -> B) is swizzled so both sides are free of bank conflicts (smem_index).
//
// ---- Multi-pass (N > the longest single-pass row) ----------------------------------------------
// N = N1 * N2 (N2 = the single-pass length, N1 <= 2^12). The row is viewed as an N1 x N2 matrix
// (index i1 * N2 + i2):
//   pass A, the row kernel on every length-N2 segment (bits of i2), x -> fp32/fp64 workspace;
//   pass B, the column kernel: a block takes an N1 x C tile (C adjacent columns) and transforms
//     along i1 in `rounds` rounds of at most R bits each; round 0 reads the workspace, the last
//     round applies the scale and writes y, rounds in between go through shared memory.
// Rows are processed in chunks whose workspace fits in L2, so pass B mostly reads from L2.
#pragma once

#include <cstdint>

#include "shared/host_device.h"

namespace zerofwht {
namespace cuda {

constexpr int kVecBytes = 16;        // widest load / store per thread
constexpr int kBlockThreads = 256;   // threads of a block when rows are short (several rows)
constexpr int kMaxRowThreadsLog = 9; // at most 512 threads on one row
constexpr int kMaxRowLogN = 15;      // longest single-pass row, 2^15
constexpr int kMaxColLogN = 12;      // longest column (pass B), 2^12: N <= 2^(15 + 12)

ZF_HD constexpr int ilog2(int64_t v) {
  int r = 0;
  while ((int64_t(1) << r) < v) ++r;
  return r;
}

// ---- row kernel --------------------------------------------------------------------------------
struct RowConfig {
  int log_n;           // row (or segment) length, log2
  int log_e;           // elements per thread, log2 (phase A: contiguous)
  int log_lanes;       // threads of a row inside one warp, log2 (<= 5)
  int log_warps;       // warps per row, log2; > 0 means the shared-memory phase B
  int log_k;           // phase B: adjacent columns per thread (K = E / W), log2
  int rows_per_block;  // rows handled by one block
  int threads;         // threads per block
  int smem_bytes;      // dynamic shared memory per block (0 without phase B)
};

// elem_bytes: size of the loaded element (sets the 16-byte vector width); acc_bytes: size of the
// accumulator (fp32 for fp16/bf16/fp32, fp64 for fp64), which is what shared memory holds.
ZF_HD constexpr RowConfig row_config(int log_n, int elem_bytes, int acc_bytes) {
  const int log_vec = ilog2(kVecBytes / elem_bytes);
  RowConfig c{};
  c.log_n = log_n;
  if (log_n <= log_vec) {
    c.log_e = log_n;  // one thread holds the whole (short) row
  } else {
    int e = log_n - 5;  // a full warp per row once rows are long enough ...
    if (e < log_vec) e = log_vec;  // ... but at least 16 bytes per thread
    if (e > 5) e = 5;              // at most 32 elements per thread (registers)
    if (log_n - e > kMaxRowThreadsLog) e = log_n - kMaxRowThreadsLog;  // <= 512 threads
    c.log_e = e;
  }
  const int log_tpr = log_n - c.log_e;
  c.log_lanes = log_tpr < 5 ? log_tpr : 5;
  c.log_warps = log_tpr - c.log_lanes;
  c.log_k = c.log_e - c.log_warps;  // >= 0 by construction (checked in the tests)
  const int tpr = 1 << log_tpr;
  c.rows_per_block = tpr >= kBlockThreads ? 1 : kBlockThreads / tpr;
  c.threads = c.rows_per_block * tpr;
  c.smem_bytes = c.log_warps > 0 ? c.rows_per_block * (1 << log_n) * acc_bytes : 0;
  return c;
}

// Phase A: element of the row held by thread tr (of the row) in register j.
ZF_HD int index_a(const RowConfig& c, int tr, int j) { return (tr << c.log_e) + j; }

// Phase B: element held by thread tr in slot = w * K + s (w: warp position, s: column offset).
ZF_HD int index_b(const RowConfig& c, int tr, int slot) {
  const int w = slot >> c.log_k, s = slot & ((1 << c.log_k) - 1);
  return (w << (c.log_e + 5)) + (tr << c.log_k) + s;
}

// Where element i of a row lives in the row's shared-memory segment (acc elements). The row is cut
// into 16-byte chunks and 128-byte lines (8 chunks, one pass over the 32 banks); the chunk's
// position inside its line is XORed with v(line), v = (h0^h1, h1^h3, h2) of the line index h.
// Chosen (and checked exhaustively in tests/fwht_cuda_emulate.cu) so that the phase-A stores (8
// consecutive threads, one chunk each) and every phase-B load pattern (runs of K columns, 16 or
// 8 bytes per lane) touch 8 different bank groups per 128-byte wavefront, for fp32 and fp64.
ZF_HD int smem_index(const RowConfig& c, int acc_bytes, int i) {
  (void)c;
  const int log_va = ilog2(kVecBytes / acc_bytes);  // acc elements per 16-byte chunk
  const int chunk = i >> log_va, h = chunk >> 3;
  const int v = ((h ^ (h >> 1)) & 1) | (((h >> 1) ^ (h >> 3)) & 1) << 1 | ((h >> 2) & 1) << 2;
  return ((chunk ^ v) << log_va) | (i & ((1 << log_va) - 1));
}

// ---- column kernel (pass B) ----------------------------------------------------------------------
struct ColConfig {
  int log_n1;      // column length (number of segments of a row), log2
  int log_n2;      // segment length (distance between two elements of a column), log2
  int log_c;       // columns per tile, log2
  int log_slots;   // R: elements per thread per unit, log2 (a unit = 2^R elements)
  int rounds;      // rounds of at most R bits; round k takes round_bits(k) bits
  int threads;     // threads per block
  int smem_bytes;  // tile in shared memory (0 when rounds == 1)
};

constexpr int kColThreads = 256;
constexpr int kColTileBytes = 64 * 1024;  // tile size aimed at (two blocks per SM on A100/H100)
constexpr int kColMinRunBytes = 32;       // at least one 32-byte sector per column run

// max_smem: the device's shared memory per block; the tile aims at min(kColTileBytes, max_smem)
// but never below one sector per column run (such a tile may not fit: the caller checks).
ZF_HD constexpr ColConfig col_config(int log_n1, int log_n2, int acc_bytes, int max_smem) {
  ColConfig c{};
  c.log_n1 = log_n1;
  c.log_n2 = log_n2;
  c.log_slots = acc_bytes == 8 ? 4 : 5;
  c.threads = kColThreads;
  const int log_tile_min = ilog2(kColThreads) + c.log_slots;  // one unit per thread per round
  const int tile_bytes = max_smem < kColTileBytes ? max_smem : kColTileBytes;
  int log_c = ilog2(tile_bytes / acc_bytes + 1) - 1 - log_n1;  // floor(log2)
  const int log_c_min = ilog2(kColMinRunBytes / acc_bytes);
  if (log_c < log_c_min) log_c = log_c_min;
  if (log_n1 + log_c < log_tile_min) log_c = log_tile_min - log_n1;
  if (log_c > log_n2) log_c = log_n2;
  c.log_c = log_c;
  c.rounds = log_n1 <= c.log_slots ? 1 : (log_n1 + c.log_slots - 1) / c.log_slots;
  c.smem_bytes = c.rounds > 1 ? (1 << (log_n1 + log_c)) * acc_bytes : 0;
  return c;
}

// Bits taken by round k (balanced; they add up to log_n1), and the lowest of them.
ZF_HD int round_bits(const ColConfig& c, int k) { return (c.log_n1 + k) / c.rounds; }
ZF_HD int round_first_bit(const ColConfig& c, int k) {
  int b = 0;
  for (int q = 0; q < k; ++q) b += round_bits(c, q);
  return b;
}

// log2 of the units of a round (tile / 2^R), independent of the round.
ZF_HD int log_units(const ColConfig& c) {
  const int lt = c.log_n1 + c.log_c;
  return lt > c.log_slots ? lt - c.log_slots : 0;
}

// Tile position (i1, column) of slot j of unit u in round k. The low round_bits of j run through
// the round's bits of i1 (the butterfly partners); the rest of j and u pick the group, columns
// fastest, so consecutive threads touch consecutive columns (coalesced, few bank conflicts).
// Returns false for slots past the tile (tiles smaller than a unit per thread: never used).
ZF_HD bool col_position(const ColConfig& c, int k, int64_t u, int j, int* i1, int* col) {
  const int b = round_bits(c, k), b0 = round_first_bit(c, k);
  const int jm = j & ((1 << b) - 1), jf = j >> b;
  const int64_t g = (int64_t(jf) << log_units(c)) + u;  // group index
  const int lt = c.log_n1 + c.log_c;
  if (g >= (int64_t(1) << (lt - b))) return false;
  *col = int(g & ((1 << c.log_c) - 1));
  const int64_t rest = g >> c.log_c;  // (hi, lo) bits of i1 without the round's bits
  const int lo = int(rest & ((1 << b0) - 1));
  const int hi = int(rest >> b0);
  *i1 = (hi << (b0 + b)) | (jm << b0) | lo;
  return true;
}

// Where tile element (i1, col) lives in shared memory. When a warp's 128 bytes span several tile
// rows (C * acc < 128 bytes), those rows differ in bits of i1 that depend on the round; the low
// two bits of the row are XORed with the XOR-fold (2-bit groups) of the bits above, so that rows
// 2^b apart land in different bank groups in every round (worst case: tests/fwht_cuda_emulate.cu).
ZF_HD int tile_index(const ColConfig& c, int i1, int col) {
  int fold = 0;
  for (int h = i1 >> 2; h; h >>= 2) fold ^= h & 3;
  return ((i1 ^ fold) << c.log_c) + col;
}

// Longest transform the CUDA kernels take for an element/accumulator size on a device with
// `max_smem` bytes of (opt-in) shared memory per block; the longest single-pass row likewise.
ZF_HD int max_row_log_n(int elem_bytes, int acc_bytes, int max_smem) {
  int best = 0;
  for (int l = 0; l <= kMaxRowLogN; ++l)
    if (row_config(l, elem_bytes, acc_bytes).smem_bytes <= max_smem) best = l;
  return best;
}
ZF_HD int max_log_n(int elem_bytes, int acc_bytes, int max_smem) {
  const int l2 = max_row_log_n(elem_bytes, acc_bytes, max_smem);
  int best = l2;
  for (int l1 = 1; l1 <= kMaxColLogN; ++l1)
    if (col_config(l1, l2, acc_bytes, max_smem).smem_bytes <= max_smem) best = l2 + l1;
  return best;
}

}  // namespace cuda
}  // namespace zerofwht
