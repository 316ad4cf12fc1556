// The element types of the kernels: one enum for every device and op. The glue maps
// at::ScalarType to it (kernel_dtype in fwht_glue_common.h); the kernels switch on it and never
// see torch. The codes are also those of zerofwht._C.cuda_max_log_n.
#pragma once

namespace zerofwht {

enum class DType : int { kFloat32 = 0, kFloat64 = 1, kFloat16 = 2, kBFloat16 = 3 };

}  // namespace zerofwht
