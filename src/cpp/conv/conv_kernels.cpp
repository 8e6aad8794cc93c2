// conv_kernels<T>(): the active ISA's (or a given ISA's) table of convolution kernels.
#include "conv/conv_kernels.h"

#include "common/cpu.h"

namespace fastcnn {

#define FASTCNN_CONV_KERNELS(dt, isa)                                 \
  {dt##_winograd_input_f2x3__##isa, dt##_winograd_output_f2x3__##isa, \
   dt##_winograd_dy_f2x3__##isa,    dt##_to_pixel_major__##isa,       \
   dt##_from_pixel_major__##isa,    dt##_winograd_input_f4x3__##isa,  \
   dt##_winograd_output_f4x3__##isa}
#define FASTCNN_CONV_KERNELS_CASES(dt)                            \
  switch (isa) {                                                  \
    case Isa::avx512:                                             \
      FASTCNN_IF_AVX512(return FASTCNN_CONV_KERNELS(dt, avx512)); \
      [[fallthrough]];                                            \
    case Isa::avx2:                                               \
      FASTCNN_IF_AVX2(return FASTCNN_CONV_KERNELS(dt, avx2));     \
      [[fallthrough]];                                            \
    default:                                                      \
      return FASTCNN_CONV_KERNELS(dt, generic);                   \
  }
#if defined(FASTCNN_HAVE_AVX512)
#define FASTCNN_IF_AVX512(stmt) stmt
#else
#define FASTCNN_IF_AVX512(stmt)
#endif
#if defined(FASTCNN_HAVE_AVX2)
#define FASTCNN_IF_AVX2(stmt) stmt
#else
#define FASTCNN_IF_AVX2(stmt)
#endif

template <>
ConvKernels<float> conv_kernels<float>(Isa isa) {
  FASTCNN_CONV_KERNELS_CASES(f32)
}

template <>
ConvKernels<double> conv_kernels<double>(Isa isa) {
  FASTCNN_CONV_KERNELS_CASES(f64)
}

template <class T>
ConvKernels<T> conv_kernels() {
  return conv_kernels<T>(active_isa());
}
template ConvKernels<float> conv_kernels<float>();
template ConvKernels<double> conv_kernels<double>();

}  // namespace fastcnn
