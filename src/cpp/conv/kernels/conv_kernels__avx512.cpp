// The convolution kernels of conv/conv_kernels.h for ISA avx512: compiled with -mavx512f -mfma
// only.
#include "conv/kernels/conv_kernels_impl.h"

namespace fastcnn {

FASTCNN_DEFINE_CONV_KERNELS(avx512, 64)

}  // namespace fastcnn
