// Max and average pooling, forward and backward, on NCHW planes (float and double).
// Leaves out dilation, ceil-mode and count_include_pad=False: the reference has none of them.
// Layout contract: x and dx are (N,C,H,W) row-major; y, dy and argmax are (N,C,P,Q) row-major,
// all C-contiguous; g is a validated Geometry2d with g.k == g.c. argmax's index type I is
// int64_t or uint8_t (an eighth of the memory, for windows of at most 256 elements: what a
// network keeps for the backward pass; the caller checks that the window fits).
#pragma once

#include <cstdint>

#include "common/geometry.h"

namespace fastcnn {

// y = max over each window (padding is -inf and never beats a real element); argmax holds
// r*g.s + s of the winner, first max in row-major order on ties, the first NaN if any.
template <class T, class I>
void max_pool2d_forward(const Geometry2d& g, const T* x, T* y, I* argmax);

// dx = 0, then dy routed to the argmax position of each window; overlapping windows add up in
// the reference's order, so the bits match it and do not depend on the thread count.
template <class T, class I>
void max_pool2d_backward(const Geometry2d& g, const T* dy, const I* argmax, T* dx);

// y = sum of the window (padding counts as zeros) / (g.r * g.s).
template <class T>
void avg_pool2d_forward(const Geometry2d& g, const T* x, T* y);

// dx = dy / (g.r * g.s) spread over each window; overlaps add up in the reference's order.
template <class T>
void avg_pool2d_backward(const Geometry2d& g, const T* dy, T* dx);

}  // namespace fastcnn
