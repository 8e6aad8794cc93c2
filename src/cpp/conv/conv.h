// 2-D convolution (cross-correlation, zero padding) on NCHW data, built on the GEMM driver and
// micro-kernels with operands packed straight from the images (no batch-sized im2col matrix).
// Each pass runs the first applicable algorithm of its list (algorithms.h), defined in
// algorithms.cpp with these entry points.
// Layout: x is (N,C,H,W), w is (K,C,R,S), b is (K,), y and dy are (N,K,P,Q); all C-contiguous.
#pragma once

#include "common/geometry.h"

namespace fastcnn {

// Whether 3 x 3, unit-stride convolutions may use the Winograd F(2x2, 3x3) form (winograd.h):
// on by default, off when the environment has FASTCNN_WINOGRAD=0 (or false, off, no) at
// start-up, or as set here. Off, Winograd supports no call, pinned or not: every convolution
// takes a direct form, with the rounding of an im2col GEMM.
bool winograd_enabled();
void set_winograd_enabled(bool enabled);

// y = conv(x, w) + b (b may be null); relu != 0 applies max(y, 0) in the same pass.
template <class T>
void conv2d_forward(const Geometry2d& g, const T* x, const T* w, const T* b, T* y, bool relu);

// dx = the gradient with respect to x of sum(dy * conv(x, w)).
template <class T>
void conv2d_backward_data(const Geometry2d& g, const T* dy, const T* w, T* dx);

// dw = sum_n dy_n . im2col(x_n)^T, db = sum of dy over (N, P, Q) (db may be null). The sum over
// images runs in fixed chunks added in order: the same bits for any thread count.
template <class T>
void conv2d_backward_weights(const Geometry2d& g, const T* dy, const T* x, T* dw, T* db);

}  // namespace fastcnn
