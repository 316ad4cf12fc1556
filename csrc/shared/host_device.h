// ZF_HD marks the functions shared by the host and the GPU (index arithmetic, element rules):
// __host__ __device__ under nvcc, plain inline C++ under the host compiler, so the same code is
// compiled for the device, for the CPU kernels and for the host tests.
#pragma once

#if defined(__CUDACC__)
#define ZF_HD __host__ __device__ __forceinline__
#else
#define ZF_HD inline
#endif
