// Winograd F(4x4, 3x3) convolution: the forward pass of 3 x 3, unit-stride convolutions with
// 4x fewer multiplies than the direct form (36 per 4 x 4 output tile and channel pair instead
// of 144; F(2x2, 3x3) saves 2.25x). The driver is winograd_tiles.h's forward over 6 x 6
// windows: 36 GEMMs (tiles x C by C x K) per block of tiles on the GEMM micro-kernels. No
// weight gradient (F(2x2) and the direct form compute it). Its float32 error against a float64
// reference is measured per DeepConvNet layer in docs/performance.md: a few times F(2x2)'s,
// within the tolerance the tests hold every kernel to.
#pragma once

#include <cstdint>

#include "common/geometry.h"

namespace fastcnn {

// Whether F(4x4, 3x3) can compute g: what F(2x2, 3x3) needs (winograd_supports: Winograd on,
// a 3 x 3 window, unit strides); the forward also needs finite weights (algorithms.cpp).
bool winograd4_supports(const Geometry2d& g);

// Whether the default order prefers it to F(2x2) (tuning.h's Winograd F(4x4) section): where
// F(2x2) is preferred (winograd_forward_preferred), with enough 4 x 4 tiles to amortise its
// larger weight transform, and where its tiles do not waste what it saves (output sizes near
// multiples of 4: DeepConvNet's 28, 16 and 8, not 14).
bool winograd4_forward_preferred(const Geometry2d& g);

// conv2d_forward (see conv.h) by F(4x4, 3x3), for finite weights w. Declines (returns false,
// with y partly written) when x holds an infinity or NaN or a result overflows, as F(2x2).
template <class T>
bool conv2d_forward_winograd4(const Geometry2d& g, const T* x, const T* w, const T* b, T* y,
                              bool relu);

// U = G g G^T of filters k0 <= k < k1 of w (K x C x 3 x 3) into u[xi*C*K + c*K + k], 36 points
// xi = 6*i + j, computed in double and rounded once to T. Declared for the kernel tests.
template <class T>
void transform_weights_f4(const Geometry2d& g, const T* w, int64_t k0, int64_t k1, T* u);

}  // namespace fastcnn
