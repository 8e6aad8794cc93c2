// The convolution kernels that are not GEMM micro-kernels, per ISA: Winograd F(2x2, 3x3) tile
// transforms (of inputs, outputs and output gradients) (see winograd.h), F(4x4, 3x3) tile
// transforms of inputs and outputs (see winograd4.h) and transposing copies
// between channel-major (NCHW) and pixel-major (HWC) layouts. Defined in
// kernels/conv_kernels__<isa>.cpp (one source, kernels/conv_kernels_impl.h, compiled with each
// ISA's flags); conv_kernels<T>() picks the active ISA's, like gemm_config<T>().
#pragma once

#include <cstdint>

#include "common/cpu.h"

namespace fastcnn {

// v[xi*vs + t*C + c] = (B^T d B)[xi] for channel c of tiles t < ntiles, whose 4 x 4 windows d
// start at x + off[t] in a pixel-major image (pixel (i, j) at + i*ws + j*C, channel c at + c).
#define FASTCNN_DECLARE_WINOGRAD_INPUT(name, T) \
  void name(int64_t C, int64_t ntiles, const T* x, const int64_t* off, int64_t ws, T* v, int64_t vs)
// The 2 x 2 outputs A^T m A of tiles t < ntiles from m[xi*ms + t*K + k], pixel-major: pixel
// (i, j) of tile t at y[off[t] + i*ys + j*K + k], only where edge[t] says it exists (bit 0: a
// right column, bit 1: a bottom row).
#define FASTCNN_DECLARE_WINOGRAD_OUTPUT(name, T)                                         \
  void name(int64_t K, int64_t ntiles, const T* m, int64_t ms, T* y, const int64_t* off, \
            const uint8_t* edge, int64_t ys)
// z = A g A^T of the 2 x 2 dy tiles g of tiles t < ntiles (pixel (i, j) of tile t at dy +
// off[t] + i*ys + j*K, channel k at + k; pixels outside the output, per edge[t], are 0), packed
// as a GEMM B operand in panels of nr channels: z[xi*zs + (k / nr)*ntiles*nr + t*nr + k % nr],
// zero past K in the last panel.
#define FASTCNN_DECLARE_WINOGRAD_DY(name, T)                                                 \
  void name(int64_t K, int64_t ntiles, const T* dy, const int64_t* off, const uint8_t* edge, \
            int64_t ys, T* z, int64_t zs, int64_t nr)
// dst[(j / run)*drs + (j % run)*ldd + i] = src[i*lds + j] for i < rows, j < cols (runs of
// `run` values, image rows, go drs apart); false when a value is inf or NaN.
#define FASTCNN_DECLARE_TO_PIXEL_MAJOR(name, T)                                         \
  bool name(const T* src, int64_t rows, int64_t cols, int64_t lds, T* dst, int64_t ldd, \
            int64_t run, int64_t drs)
// y[k*plane + j] = src[j*lds + k] + b[k] (b may be null), then ReLU if relu, for j < count and
// k < K: the forward epilogue of pixel-major products; false when a result before the ReLU is
// inf or NaN.
#define FASTCNN_DECLARE_FROM_PIXEL_MAJOR(name, T)                                             \
  bool name(const T* src, int64_t count, int64_t K, int64_t lds, const T* b, bool relu, T* y, \
            int64_t plane)
#define FASTCNN_DECLARE_CONV_KERNELS_FOR(dt, T, isa)                    \
  FASTCNN_DECLARE_WINOGRAD_INPUT(dt##_winograd_input_f2x3__##isa, T);   \
  FASTCNN_DECLARE_WINOGRAD_OUTPUT(dt##_winograd_output_f2x3__##isa, T); \
  FASTCNN_DECLARE_WINOGRAD_DY(dt##_winograd_dy_f2x3__##isa, T);         \
  FASTCNN_DECLARE_WINOGRAD_INPUT(dt##_winograd_input_f4x3__##isa, T);   \
  FASTCNN_DECLARE_WINOGRAD_OUTPUT(dt##_winograd_output_f4x3__##isa, T); \
  FASTCNN_DECLARE_TO_PIXEL_MAJOR(dt##_to_pixel_major__##isa, T);        \
  FASTCNN_DECLARE_FROM_PIXEL_MAJOR(dt##_from_pixel_major__##isa, T)
#define FASTCNN_DECLARE_CONV_KERNELS(isa)            \
  FASTCNN_DECLARE_CONV_KERNELS_FOR(f32, float, isa); \
  FASTCNN_DECLARE_CONV_KERNELS_FOR(f64, double, isa)
FASTCNN_DECLARE_CONV_KERNELS(generic);
FASTCNN_DECLARE_CONV_KERNELS(avx2);
FASTCNN_DECLARE_CONV_KERNELS(avx512);

template <class T>
struct ConvKernels {
  FASTCNN_DECLARE_WINOGRAD_INPUT((*winograd_input), T);
  FASTCNN_DECLARE_WINOGRAD_OUTPUT((*winograd_output), T);
  FASTCNN_DECLARE_WINOGRAD_DY((*winograd_dy), T);
  FASTCNN_DECLARE_TO_PIXEL_MAJOR((*to_pixel_major), T);
  FASTCNN_DECLARE_FROM_PIXEL_MAJOR((*from_pixel_major), T);
  // F(4x4, 3x3): the same contracts over 6 x 6 windows and 36 points (xi = 6*i + j), 4 x 4
  // outputs whose edge[t] is (columns - 1) | (rows - 1) << 2.
  FASTCNN_DECLARE_WINOGRAD_INPUT((*winograd4_input), T);
  FASTCNN_DECLARE_WINOGRAD_OUTPUT((*winograd4_output), T);
};

// The active ISA's kernels, and a given ISA's (an ISA this build has no kernels for falls back
// to generic).
template <class T>
ConvKernels<T> conv_kernels();
template <class T>
ConvKernels<T> conv_kernels(Isa isa);

}  // namespace fastcnn
