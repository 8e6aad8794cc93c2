// Winograd F(2x2, 3x3) convolution: the forward pass and weight gradient of 3 x 3, unit-stride
// convolutions with 2.25x fewer multiplies than the direct form (16 per 2 x 2 output tile and
// channel pair instead of 36). The forward, per block of output tiles:
//   1. the input rows are copied pixel-major (HWC) with their zero padding;
//   2. each tile's 4 x 4 window is transformed, V = B^T d B (16 points per channel);
//   3. 16 GEMMs, one per transform point xi: M[xi] (tiles x K) = V[xi] (tiles x C) . U[xi]
//      (C x K), where U = G g G^T are the transformed weights, packed once per call;
//   4. each tile's 2 x 2 output is A^T M A, copied into y with the bias (and ReLU).
// The transforms only add and subtract (and halve, in U), so the results differ from the
// direct form by a few roundings: well inside the tolerance the tests hold every kernel to.
#pragma once

#include <cstdint>

#include "common/geometry.h"

namespace fastcnn {

// Whether F(2x2, 3x3) can compute g: Winograd on (winograd_enabled), a 3 x 3 window and unit
// strides. A pinned algorithm (conv/algorithms.h) runs wherever this holds, any channels, any
// ISA; the forward also needs finite weights (conv/algorithms.cpp checks them).
bool winograd_supports(const Geometry2d& g);

// Whether the default order prefers it to the direct form (tuning.h's measurements): SIMD
// micro-kernels (not the generic ISA), at least 8 input and 8 output channels, for the
// forward 16 output channels, for the weight gradient 256 channel pairs, and enough 2 x 2
// output tiles in the batch to amortise the weight transforms (the minimums below).
bool winograd_forward_preferred(const Geometry2d& g);
bool winograd_weights_preferred(const Geometry2d& g);

// Those minimum tile counts (tuning::kWinograd*MinTiles unless set); tests set 0 so that
// Winograd runs on small shapes wherever it may.
struct WinogradMinTiles {
  int64_t forward, weights;
};
WinogradMinTiles get_winograd_min_tiles();
void set_winograd_min_tiles(WinogradMinTiles t);  // both >= 0, else std::invalid_argument

// conv2d_forward (see conv.h) by F(2x2, 3x3), for finite weights w. Declines (returns false,
// with y partly written) when x holds an infinity or NaN (the transforms' differences would
// turn inf - inf into NaN where the direct sums have an infinity) or a result overflows: the
// algorithm list (conv/algorithms.cpp) then runs the next algorithm instead.
template <class T>
bool conv2d_forward_winograd(const Geometry2d& g, const T* x, const T* w, const T* b, T* y,
                             bool relu);

// conv2d_backward_weights (see conv.h) by F(2x2, 3x3): dU[xi] = sum over tiles of V[xi]^T .
// Z[xi], where Z = A dy A^T transforms each 2 x 2 tile of dy, then dW = G^T dU G. Images are
// summed in fixed chunks, then chunks in order: the same bits for any thread count. Declines
// (returns false, with dw and db unusable) when x or dy holds an infinity or NaN or a result
// overflows.
template <class T>
bool conv2d_backward_weights_winograd(const Geometry2d& g, const T* dy, const T* x, T* dw, T* db);

// The weight transforms of the two drivers, declared here for the kernel tests: U = G g G^T of
// filters k0 <= k < k1 of w (K x C x 3 x 3) into u[xi*C*K + c*K + k] (uses g.c and g.k), and
// its adjoint dW = G^T dU G of all filters from du (the same layout as u) into dw.
template <class T>
void transform_weights(const Geometry2d& g, const T* w, int64_t k0, int64_t k1, T* u);
template <class T>
void gradient_to_weights(const Geometry2d& g, const T* du, T* dw);

}  // namespace fastcnn
