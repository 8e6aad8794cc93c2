// The GotoBLAS/BLIS blocked GEMM driver, generic over how operands are packed, so the
// convolution kernels reuse it by packing straight from images. Everything here is portable;
// only the micro-kernel in GemmConfig is ISA-specific.
//
// Contract: C is M x N row-major with row stride ldc; C = alpha * A.B + beta * C where A is
// M x K and B is K x N as seen through the packers:
//   pack_a(i0, mc, k0, kc, dst) packs A[i0:i0+mc, k0:k0+kc] (see pack.h for the layout),
//   pack_b(k0, kc, j0, nc, dst) packs B[k0:k0+kc, j0:j0+nc].
// The K loop is blocked by cfg.kc independently of threads and tiles, so every element of C
// sees the same sequence of operations whichever thread computes it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "common/memory.h"
#include "common/parallel.h"
#include "common/tuning.h"
#include "gemm/pack.h"
#include "gemm/ukernel.h"

namespace fastcnn {

// Per-thread packing buffers, sized for one (mc x kc) A block and one (kc x nc) B panel.
template <class T>
struct GemmScratch {
  AlignedBuffer<T> a, b;
  GemmScratch(const GemmConfig<T>& cfg, int64_t m, int64_t n, int64_t k) {
    const int64_t kc = std::min(cfg.kc, std::max<int64_t>(k, 1));
    a.reset(round_up(std::min(cfg.mc, std::max<int64_t>(m, 1)), cfg.mr) * kc);
    b.reset(round_up(std::min(cfg.nc, std::max<int64_t>(n, 1)), cfg.nr) * kc);
  }
};

// A packer that packs nothing: A is read in place by the *_strided_a micro-kernels. Worth it
// when each element of A meets only one or two B micro-panels, so packing would just copy A.
template <class T>
struct InPlaceA {
  StridedMatrix<T> a;
};

template <class T, class PackA>
constexpr bool kInPlaceA = std::is_same_v<PackA, InPlaceA<T>>;

// An operand packed once up front (see prepack_a, prepack_b) and shared read-only by every
// thread and every call that multiplies by it: a convolution's weights, used for every image of
// a batch. Layout (A's, and B's with rows and columns swapped): for each KC block pc in order,
// the ceil(M/MR) micro-panels of rows [0, M), each kc x MR; so block (ic, pc) starts at
// data + pc * mpad + ic * kc. PanelBlocks reads that layout wherever it lies; PrepackedPanels
// also owns it.
template <class T>
struct PanelBlocks {
  const T* data = nullptr;
  int64_t mpad = 0;
  const T* block(int64_t ic, int64_t pc, int64_t kc) const { return data + pc * mpad + ic * kc; }
};

template <class T>
struct PrepackedPanels {
  AlignedBuffer<T> data;
  int64_t mpad = 0;
  const T* block(int64_t ic, int64_t pc, int64_t kc) const {
    return data.data() + pc * mpad + ic * kc;
  }
};

template <class T, class PackA>
constexpr bool kPrepacked = std::is_same_v<PackA, PrepackedPanels<T>>;

// Elements of an operand `width` rows (of A; columns of B) wide and K deep in that layout,
// with micro-panels of `panel` lanes.
inline int64_t prepacked_size(int64_t width, int panel, int64_t K) {
  return round_up(std::max<int64_t>(width, 1), panel) * std::max<int64_t>(K, 1);
}

// Packs an operand in the PrepackedPanels layout into dst (prepacked_size elements): `width`
// rows of A (or columns of B) in micro-panels of `panel` lanes, K deep, blocked by kc;
// pack(pc, kc, dst) packs one KC block.
template <class T, class Pack>
PanelBlocks<T> pack_blocks_into(int64_t width, int panel, int64_t K, int64_t kc_max, Pack&& pack,
                                T* dst) {
  const int64_t mpad = round_up(std::max<int64_t>(width, 1), panel);
  for (int64_t pc = 0; pc < K; pc += kc_max) pack(pc, std::min(kc_max, K - pc), dst + pc * mpad);
  return {dst, mpad};
}

template <class T, class Pack>
PrepackedPanels<T> prepack_blocks(int64_t width, int panel, int64_t K, int64_t kc_max,
                                  Pack&& pack) {
  PrepackedPanels<T> packed;
  packed.data.reset(prepacked_size(width, panel, K));
  packed.mpad = pack_blocks_into<T>(width, panel, K, kc_max, pack, packed.data.data()).mpad;
  return packed;
}

// Packs all of A (M x K) once in the PrepackedPanels layout for cfg's MR and KC.
template <class T>
PrepackedPanels<T> prepack_a(const GemmConfig<T>& cfg, const StridedMatrix<T>& a, int64_t M,
                             int64_t K) {
  return prepack_blocks<T>(M, cfg.mr, K, cfg.kc, [&](int64_t pc, int64_t kc, T* dst) {
    pack_a(a, cfg.mr, 0, M, pc, kc, dst);
  });
}

// Packs all of B (K x N) once, the same way: block(j0, pc, kc) is the kc x NR micro-panel of
// columns [j0, j0 + NR) in KC block pc. prepack_b_into packs it into dst (prepacked_size(N,
// cfg.nr, K) elements), for many operands in one buffer.
template <class T>
PanelBlocks<T> prepack_b_into(const GemmConfig<T>& cfg, const StridedMatrix<T>& b, int64_t K,
                              int64_t N, T* dst) {
  return pack_blocks_into<T>(
      N, cfg.nr, K, cfg.kc,
      [&](int64_t pc, int64_t kc, T* out) { pack_b(b, cfg.nr, pc, kc, 0, N, out); }, dst);
}

template <class T>
PrepackedPanels<T> prepack_b(const GemmConfig<T>& cfg, const StridedMatrix<T>& b, int64_t K,
                             int64_t N) {
  return prepack_blocks<T>(N, cfg.nr, K, cfg.kc, [&](int64_t pc, int64_t kc, T* dst) {
    pack_b(b, cfg.nr, pc, kc, 0, N, dst);
  });
}

// The micro-tile loop nest every product here and in the convolutions runs (the micro-kernel
// call is the caller's): tile(i0, j0, mr, nr) for each tile of an M x N block of C, in NR-wide
// columns of MR-high tiles (columns outer: a kc x NR B micro-panel stays in L1 while the A
// micro-panels stream past it) or, rows outer, in MR-high rows of NR-wide tiles (where the
// A rows are the costly operand to reload, as in the direct weight gradient). Edge tiles are
// short (mr < MR, nr < NR). Every tile is computed on its own, so the order changes no bits.
enum class TileOrder { columns_outer, rows_outer };
template <TileOrder kOrder = TileOrder::columns_outer, class Tile>
inline void for_each_tile(int64_t M, int64_t N, int64_t MR, int64_t NR, Tile&& tile) {
  if constexpr (kOrder == TileOrder::columns_outer) {
    for (int64_t j0 = 0; j0 < N; j0 += NR) {
      const int64_t nr = std::min(NR, N - j0);
      for (int64_t i0 = 0; i0 < M; i0 += MR) tile(i0, j0, std::min(MR, M - i0), nr);
    }
  } else {
    for (int64_t i0 = 0; i0 < M; i0 += MR) {
      const int64_t mr = std::min(MR, M - i0);
      for (int64_t j0 = 0; j0 < N; j0 += NR) tile(i0, j0, mr, std::min(NR, N - j0));
    }
  }
}

// The KC loop outside it: block(pc, kc, beta_k) for the blocks [pc, pc + kc) of a K-long
// reduction, kc <= KC; the first block scales C by `beta`, later ones accumulate (beta_k = 1).
// Blocked by the shape alone, so every element of C sees the same sums whatever the threads.
template <class T, class Block>
inline void for_each_k_block(int64_t K, int64_t KC, T beta, Block&& block) {
  for (int64_t pc = 0; pc < K; pc += KC) block(pc, std::min(KC, K - pc), pc == 0 ? beta : T(1));
}

// C[m0:m1, n0:n1] = alpha * A[m0:m1, :] . B[:, n0:n1] + beta * C[m0:m1, n0:n1], on this thread.
// Loop order jc (NC) > pc (KC, pack B) > ic (MC, pack A) > jr (NR) > ir (MR, micro-kernel).
template <class T, class PackA, class PackB>
void gemm_block_range(const GemmConfig<T>& cfg, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
                      int64_t K, T alpha, const PackA& pack_a, const PackB& pack_b, T beta, T* C,
                      int64_t ldc, GemmScratch<T>& scratch) {
  const int64_t MR = cfg.mr, NR = cfg.nr;  // micro-tile; the loop order is the BLIS one above
  T* abuf = scratch.a.data();
  T* bbuf = scratch.b.data();
  for (int64_t jc = n0; jc < n1; jc += cfg.nc) {
    const int64_t nc = std::min(cfg.nc, n1 - jc);
    for_each_k_block(K, cfg.kc, beta, [&](int64_t pc, int64_t kc, T beta_k) {
      pack_b(pc, kc, jc, nc, bbuf);
      for (int64_t ic = m0; ic < m1; ic += cfg.mc) {
        const int64_t mc = std::min(cfg.mc, m1 - ic);
        const T* ablock = abuf;
        if constexpr (kPrepacked<T, PackA>) {
          ablock = pack_a.block(ic, pc, kc);
        } else if constexpr (!kInPlaceA<T, PackA>) {
          pack_a(ic, mc, pc, kc, abuf);
        }
        for_each_tile(mc, nc, MR, NR, [&](int64_t ir, int64_t jr, int64_t mr, int64_t nr) {
          const T* bp = bbuf + jr * kc;
          T* ct = C + (ic + ir) * ldc + jc + jr;
          if constexpr (kInPlaceA<T, PackA>) {
            const StridedMatrix<T>& a = pack_a.a;
            cfg.ukernel_strided_a(kc, a.p + (ic + ir) * a.rs + pc * a.cs, a.rs, a.cs, bp, ct, ldc,
                                  alpha, beta_k, mr, nr);
          } else {
            cfg.ukernel(kc, ablock + ir * kc, 0, 0, bp, ct, ldc, alpha, beta_k, mr, nr);
          }
        });
      }
    });
  }
}

// The work of an M x N x K product for the parallel wrapper: its multiply-adds, counted in
// float32 flops (a float64 FMA vector does half as many), and reading A and B, updating C.
template <class T>
Work gemm_work(int64_t M, int64_t N, int64_t K) {
  const double m = static_cast<double>(M), n = static_cast<double>(N), k = static_cast<double>(K);
  return Work{2.0 * m * n * k * (sizeof(T) / sizeof(float)),
              sizeof(T) * (m * k + k * n + 2 * m * n)};
}

// C = beta * C for the degenerate products (K == 0 or alpha == 0); beta == 0 never reads C.
template <class T>
void gemm_scale_c(int64_t M, int64_t N, T beta, T* C, int64_t ldc) {
  parallel_for(M, Work{0, 2.0 * sizeof(T) * M * N}, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      T* row = C + i * ldc;
      if (beta == T(0)) {
        std::fill(row, row + N, T(0));
      } else {
        for (int64_t j = 0; j < N; ++j) row[j] = beta * row[j];
      }
    }
  });
}

// Split-K is used for products with few output tiles and a long reduction (a weight gradient,
// say). The chunk length depends only on the shape, and partial sums are added in chunk order,
// so the result does not depend on the thread count.
template <class T>
bool gemm_use_split_k(const GemmConfig<T>& cfg, int64_t M, int64_t N, int64_t K) {
  const int64_t tiles = ceil_div(M, cfg.mr) * ceil_div(N, cfg.nr);
  return tiles < tuning::kSplitKMaxTiles && K >= tuning::kSplitKMinBlocks * cfg.kc;
}

template <class T, class PackA, class PackB>
void gemm_split_k(const GemmConfig<T>& cfg, int64_t M, int64_t N, int64_t K, T alpha,
                  const PackA& pack_a, const PackB& pack_b, T beta, T* C, int64_t ldc) {
  const int64_t chunk = tuning::kSplitKChunkBlocks * cfg.kc;
  const int64_t chunks = ceil_div(K, chunk);
  const int64_t mn = checked_mul(M, N, "gemm split-K partials");
  AlignedBuffer<T> partial(checked_mul(chunks, mn, "gemm split-K partials"));
  parallel_run(threads_for(chunks, gemm_work<T>(M, N, K)), [&](int part, int parts) {
    int64_t c0, c1;
    partition(chunks, part, parts, c0, c1);
    if (c0 >= c1) return;
    GemmScratch<T> scratch(cfg, M, N, chunk);
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t k0 = c * chunk;
      const int64_t kc = std::min(chunk, K - k0);
      auto pa = [&](int64_t i0, int64_t mc, int64_t p0, int64_t pk, T* dst) {
        pack_a(i0, mc, k0 + p0, pk, dst);
      };
      static_assert(!kInPlaceA<T, PackA>, "split-K packs A");
      auto pb = [&](int64_t p0, int64_t pk, int64_t j0, int64_t nc, T* dst) {
        pack_b(k0 + p0, pk, j0, nc, dst);
      };
      gemm_block_range<T>(cfg, 0, M, 0, N, kc, T(1), pa, pb, T(0), partial.data() + c * mn, N,
                          scratch);
    }
  });
  const Work add_work{0, sizeof(T) * static_cast<double>(chunks + 1) * static_cast<double>(mn)};
  parallel_for(M, add_work, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      for (int64_t j = 0; j < N; ++j) {
        T sum = partial.data()[i * N + j];
        for (int64_t c = 1; c < chunks; ++c) sum += partial.data()[c * mn + i * N + j];
        T* out = C + i * ldc + j;
        *out = beta == T(0) ? alpha * sum : alpha * sum + beta * *out;
      }
    }
  });
}

// The multithreaded driver: splits C into one contiguous block of whole micro-tiles per thread,
// along M or N, whichever has more tiles; each thread packs its own operands into its own
// buffers (no barriers; the duplicated packing of the shared operand costs O(1/N) of the work).
template <class T, class PackA, class PackB>
void gemm_driver(const GemmConfig<T>& cfg, int64_t M, int64_t N, int64_t K, T alpha,
                 const PackA& pack_a, const PackB& pack_b, T beta, T* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == T(0)) {
    gemm_scale_c(M, N, beta, C, ldc);
    return;
  }
  if constexpr (!kInPlaceA<T, PackA>) {
    if (gemm_use_split_k(cfg, M, N, K)) {
      gemm_split_k(cfg, M, N, K, alpha, pack_a, pack_b, beta, C, ldc);
      return;
    }
  }
  const int64_t tiles_m = ceil_div(M, cfg.mr), tiles_n = ceil_div(N, cfg.nr);
  const bool split_m = tiles_m >= tiles_n;
  const int64_t tiles = split_m ? tiles_m : tiles_n;
  parallel_run(threads_for(tiles, gemm_work<T>(M, N, K)), [&](int part, int parts) {
    int64_t t0, t1;
    partition(tiles, part, parts, t0, t1);
    if (t0 >= t1) return;
    int64_t m0 = 0, m1 = M, n0 = 0, n1 = N;
    if (split_m) {
      m0 = t0 * cfg.mr;
      m1 = std::min(M, t1 * cfg.mr);
    } else {
      n0 = t0 * cfg.nr;
      n1 = std::min(N, t1 * cfg.nr);
    }
    GemmScratch<T> scratch(cfg, m1 - m0, n1 - n0, K);
    gemm_block_range<T>(cfg, m0, m1, n0, n1, K, alpha, pack_a, pack_b, beta, C, ldc, scratch);
  });
}

}  // namespace fastcnn
