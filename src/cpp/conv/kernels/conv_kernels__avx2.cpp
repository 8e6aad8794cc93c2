// The convolution kernels of conv/conv_kernels.h for ISA avx2: compiled with -mavx2 -mfma only.
#include "conv/kernels/conv_kernels_impl.h"

namespace fastcnn {

FASTCNN_DEFINE_CONV_KERNELS(avx2, 32)

}  // namespace fastcnn
