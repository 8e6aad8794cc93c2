// The register-blocked micro-kernel shared by the SIMD ISAs, written once over a small traits
// type S (vector type, lane count, load/broadcast/fma). Include it ONLY from a kernels/*__<isa>.cpp
// file compiled with that ISA's flags: the template is instantiated there, with those flags.
#pragma once

#include <cstdint>

#include "gemm/ukernel.h"

namespace fastcnn {

// How a micro-kernel reads its operands (see ukernel.h): packed A and B; A read in place
// through its strides; packed A with B's rows read in place through row offsets; A read in
// place through row and column offsets with packed B; or both read in place through strides.
enum class Operands { kPacked, kStridedA, kIndirectB, kIndirectA, kStridedAB };

// MR rows x NV vectors of accumulators; see the ISA files for the register budget of each
// shape. kStridedA: A is read in place through its strides, for products where each A element
// is used once and packing would only copy it; rows past m then re-read row 0 (valid memory;
// write_tile discards them). kIndirectB: row k of B starts at b + boff[k] (unaligned loads).
// kIndirectA: A(i, k) = a[aoff[i] + koff[k]] (aoff: the rows' offsets), rows past m re-read
// row 0. kStridedAB: A as kStridedA, and row k of B at b + k*rsb, its vectors loaded under a
// mask of the first n columns (S::mask, S::loadu_mask), so an edge tile reads nothing past
// column n and the lanes past it are zero.
template <class S, class T, int MR, int NV, Operands kOps>
inline __attribute__((always_inline)) void gemm_ukernel_simd(int64_t kc, const T* a, int64_t rsa,
                                                             int64_t csa, const int64_t* aoff,
                                                             const int64_t* koff, const T* b,
                                                             const int64_t* boff, int64_t rsb, T* c,
                                                             int64_t ldc, T alpha, T beta,
                                                             int64_t m, int64_t n) {
  using V = typename S::V;
  constexpr int L = S::kLanes;
  constexpr int NR = NV * L;
  constexpr bool kPackedA = kOps == Operands::kPacked || kOps == Operands::kIndirectB;
  V acc[MR][NV];
  typename S::Mask bmask[NV];
  if constexpr (kOps == Operands::kStridedAB) {
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      const int64_t left = n - v * L;
      bmask[v] = S::mask(static_cast<int>(left < 0 ? 0 : (left > L ? L : left)));
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[i][v] = S::zero();

  const T* arow[MR];
  if constexpr (kPackedA) {
    rsa = 1;
    csa = MR;
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    if constexpr (kOps == Operands::kIndirectA) {
      arow[i] = a + aoff[i < m ? i : 0];
    } else {
      arow[i] = a + (i < m ? i : 0) * rsa;
    }
  }

#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    V bv[NV];
    if constexpr (kOps == Operands::kIndirectB) {
      const T* row = b + boff[k];
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) bv[v] = S::loadu(row + v * L);
    } else if constexpr (kOps == Operands::kStridedAB) {
      const T* row = b + k * rsb;
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) bv[v] = S::loadu_mask(row + v * L, bmask[v]);
    } else {
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) bv[v] = S::load(b + v * L);
      b += NR;
    }
    const int64_t acol = kOps == Operands::kIndirectA ? koff[k] : k * csa;
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const V ai = kPackedA ? S::broadcast(a + i) : S::broadcast(arow[i] + acol);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[i][v] = S::fma(ai, bv[v], acc[i][v]);
    }
    if constexpr (kPackedA) a += MR;
  }

  const V va = S::set1(alpha);
  const V vb = S::set1(beta);
  if constexpr (S::kMaskedStores) {
    if (m < MR || n < NR) {
      // Edge tile: the rows below m, each vector under a mask of the columns below n (the
      // same arithmetic per element as a full tile, without a round trip through a buffer).
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) {
        const int64_t left = n - v * L;
        bmask[v] = S::mask(static_cast<int>(left < 0 ? 0 : (left > L ? L : left)));
      }
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        if (i >= m) break;
        T* row = c + i * ldc;
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) {
          V r = S::mul(va, acc[i][v]);
          if (beta != T(0)) r = S::fma(vb, S::loadu_mask(row + v * L, bmask[v]), r);
          S::storeu_mask(row + v * L, bmask[v], r);
        }
      }
      return;
    }
  }
  write_tile<T, MR, NR>(c, ldc, m, n, beta, [&](T* out, int64_t ld) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      T* row = out + i * ld;
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) {
        V r = S::mul(va, acc[i][v]);
        if (beta != T(0)) r = S::fma(vb, S::loadu(row + v * L), r);
        S::storeu(row + v * L, r);
      }
    }
  });
}

// The strided-AB kernel with exactly m rows: small products (1, 2, 3 images) would otherwise
// spend most of an MR-row tile's FMAs and broadcasts on rows past m. One instance per row count.
template <class S, class T, int MR, int NV>
inline void gemm_ukernel_strided_ab_rows(int64_t kc, const T* a, int64_t rsa, int64_t csa,
                                         const T* b, int64_t rsb, T* c, int64_t ldc, T alpha,
                                         T beta, int64_t m, int64_t n) {
  if constexpr (MR > 1) {
    if (m < MR) {
      gemm_ukernel_strided_ab_rows<S, T, MR - 1, NV>(kc, a, rsa, csa, b, rsb, c, ldc, alpha, beta,
                                                     m, n);
      return;
    }
  }
  gemm_ukernel_simd<S, T, MR, NV, Operands::kStridedAB>(kc, a, rsa, csa, nullptr, nullptr, b,
                                                        nullptr, rsb, c, ldc, alpha, beta, m, n);
}

// Defines <dt>_gemm_ukernel_<tile>__<isa> (packed A) and its _strided_a, _indirect_b,
// _indirect_a and _strided_ab twins as instances of gemm_ukernel_simd over the ISA's traits
// template, for tiles of mr rows and nv vectors.
#define FASTCNN_DEFINE_SIMD_GEMM_UKERNELS(dt, T, traits, mr, nv, tile, isa)                    \
  FASTCNN_DECLARE_GEMM_UKERNEL(dt##_gemm_ukernel_##tile##__##isa, T) {                         \
    gemm_ukernel_simd<traits<T>, T, mr, nv, Operands::kPacked>(                                \
        kc, a, rsa, csa, nullptr, nullptr, b, nullptr, 0, c, ldc, alpha, beta, m, n);          \
  }                                                                                            \
  FASTCNN_DECLARE_GEMM_UKERNEL(dt##_gemm_ukernel_##tile##_strided_a__##isa, T) {               \
    gemm_ukernel_simd<traits<T>, T, mr, nv, Operands::kStridedA>(                              \
        kc, a, rsa, csa, nullptr, nullptr, b, nullptr, 0, c, ldc, alpha, beta, m, n);          \
  }                                                                                            \
  FASTCNN_DECLARE_GEMM_INDIRECT_B_UKERNEL(dt##_gemm_ukernel_##tile##_indirect_b__##isa, T) {   \
    gemm_ukernel_simd<traits<T>, T, mr, nv, Operands::kIndirectB>(                             \
        kc, a, 0, 0, nullptr, nullptr, b, boff, 0, c, ldc, T(1), beta, m, n);                  \
  }                                                                                            \
  FASTCNN_DECLARE_GEMM_INDIRECT_A_UKERNEL(dt##_gemm_ukernel_##tile##_indirect_a__##isa, T) {   \
    gemm_ukernel_simd<traits<T>, T, mr, nv, Operands::kIndirectA>(                             \
        kc, a, 0, 0, arow, koff, b, nullptr, 0, c, ldc, T(1), beta, m, n);                     \
  }                                                                                            \
  FASTCNN_DECLARE_GEMM_STRIDED_AB_UKERNEL(dt##_gemm_ukernel_##tile##_strided_ab__##isa, T) {   \
    gemm_ukernel_strided_ab_rows<traits<T>, T, mr, nv>(kc, a, rsa, csa, b, rsb, c, ldc, alpha, \
                                                       beta, m, n);                            \
  }

}  // namespace fastcnn
