// The convolution kernels of conv/conv_kernels.h for ISA generic: compiled with no ISA flags
// (portable) only.
#include "conv/kernels/conv_kernels_impl.h"

namespace fastcnn {

FASTCNN_DEFINE_CONV_KERNELS(generic, 16)

}  // namespace fastcnn
