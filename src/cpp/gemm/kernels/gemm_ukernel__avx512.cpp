// AVX-512F micro-kernels: float32 12x32 and float64 12x16. 24 zmm accumulators (12 rows x 2
// vectors) of the 32 registers, two B loads and twelve broadcasts per k step: twice the tile of
// the AVX2 kernel, so half the operand traffic per FMA. The 8-row variants serve products with
// 16, 32, 64, ... rows (a convolution's output channels), which 12-row tiles would pad by up to
// a third; the one-vector 8-row tiles (float32 8x16, float64 8x8) serve products one vector
// wide (16 output channels), where they beat the AVX2 tile of the same width on Zen 4.
// Compiled with -mavx512f -mfma only.
#include <immintrin.h>

#include "gemm/kernels/gemm_ukernel_simd.h"

namespace fastcnn {

namespace {

template <class T>
struct Avx512;

template <>
struct Avx512<float> {
  using V = __m512;
  static constexpr int kLanes = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V load(const float* p) { return _mm512_load_ps(p); }
  static V loadu(const float* p) { return _mm512_loadu_ps(p); }
  using Mask = __mmask16;
  static Mask mask(int count) { return static_cast<Mask>((1u << count) - 1); }  // first count
  static V loadu_mask(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static constexpr bool kMaskedStores = true;  // edge tiles stored under masks
  static void storeu_mask(float* p, Mask m, V v) { _mm512_mask_storeu_ps(p, m, v); }
  static void storeu(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
};

template <>
struct Avx512<double> {
  using V = __m512d;
  static constexpr int kLanes = 8;
  static V zero() { return _mm512_setzero_pd(); }
  static V set1(double x) { return _mm512_set1_pd(x); }
  static V load(const double* p) { return _mm512_load_pd(p); }
  static V loadu(const double* p) { return _mm512_loadu_pd(p); }
  using Mask = __mmask8;
  static Mask mask(int count) { return static_cast<Mask>((1u << count) - 1); }
  static V loadu_mask(const double* p, Mask m) { return _mm512_maskz_loadu_pd(m, p); }
  static constexpr bool kMaskedStores = true;
  static void storeu_mask(double* p, Mask m, V v) { _mm512_mask_storeu_pd(p, m, v); }
  static void storeu(double* p, V v) { _mm512_storeu_pd(p, v); }
  static V broadcast(const double* p) { return _mm512_set1_pd(*p); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static V mul(V a, V b) { return _mm512_mul_pd(a, b); }
};

}  // namespace

FASTCNN_DEFINE_SIMD_GEMM_UKERNELS(f32, float, Avx512, 12, 2, 12x32, avx512)
FASTCNN_DEFINE_SIMD_GEMM_UKERNELS(f64, double, Avx512, 12, 2, 12x16, avx512)
FASTCNN_DEFINE_SIMD_GEMM_UKERNELS(f32, float, Avx512, 8, 2, 8x32, avx512)
FASTCNN_DEFINE_SIMD_GEMM_UKERNELS(f64, double, Avx512, 8, 2, 8x16, avx512)
FASTCNN_DEFINE_SIMD_GEMM_UKERNELS(f32, float, Avx512, 8, 1, 8x16, avx512)
FASTCNN_DEFINE_SIMD_GEMM_UKERNELS(f64, double, Avx512, 8, 1, 8x8, avx512)

}  // namespace fastcnn
