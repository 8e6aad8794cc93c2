// The direct convolutions (direct.cpp): GEMMs over im2col matrices read in place from padded
// copies of the images. Each computes its pass for any geometry it is called with (the
// columns form needs unit strides); choosing between them is algorithms.cpp's job.
// Layout: x is (N,C,H,W), w is (K,C,R,S), b is (K,), y and dy are (N,K,P,Q); N >= 1.
#pragma once

#include "common/geometry.h"

namespace fastcnn {

// Forward "direct_columns" (unit strides only): per image, W . im2col over row-padded output
// columns, the indirect-B micro-kernel reading im2col rows in place.
template <class T>
void conv2d_forward_columns(const Geometry2d& g, const T* x, const T* w, const T* b, T* y,
                            bool relu);

// Whether the columns form should run rather than the pixels form: unit strides, and a cost
// model (the share of useful multiply-adds in each form's tiles and its epilogue's cost;
// small images waste many row-padded columns: 7 x 7 computes 2 columns in 9 for nothing).
template <class T>
bool direct_columns_preferred(const Geometry2d& g);

// Forward "direct_pixels" (any strides): per group of images, im2col^T . W^T with output
// pixels as rows, read in place by the indirect-A micro-kernel.
template <class T>
void conv2d_forward_pixels(const Geometry2d& g, const T* x, const T* w, const T* b, T* y,
                           bool relu);

// Backward-data "col2im_gemm" (any geometry): per image W^T . dy, scatter-added into dx.
template <class T>
void conv2d_backward_data_col2im(const Geometry2d& g, const T* dy, const T* w, T* dx);

// Weight gradient "direct_pixels" (any geometry): im2col(x) . dy^T over groups of images'
// pixels, im2col read in place; fixed chunks of images summed in order.
template <class T>
void conv2d_backward_weights_direct(const Geometry2d& g, const T* dy, const T* x, T* dw, T* db);

}  // namespace fastcnn
