// Machine-model constants that decide how a call is run, kept in one place: when a parallel
// region is worth its threads, and when a GEMM is small enough to skip packing. The cache
// blocking of each GEMM configuration stays beside its micro-kernel table (gemm/gemm.cpp).
//
// Measured on the development machine (AMD Zen 4, 2 cores, AVX-512), see docs/performance.md.
#pragma once

#include <cstdint>

namespace fastcnn::tuning {

// What one core does per nanosecond in fastcnn's kernels, roughly: multiply-add code runs at
// ~100 float32 GFLOP/s (half for float64) and streaming code moves ~30 bytes/ns through the
// caches. Used only to turn a region's work (flops, bytes) into an estimated time.
constexpr double kFlopsPerNs = 64.0;
constexpr double kBytesPerNs = 32.0;

// THE threshold: a parallel region gets another thread only if every thread then has at least
// this much estimated work (ns). Waking a sleeping pool thread costs ~10 us on an idle machine;
// when another process holds the other core the woken thread waits for a time slice and the
// region's closing barrier waits for it (measured 100-200 us per region), while a static split
// then gains nothing. 100 us per thread keeps calls of a few hundred microseconds or less on
// the calling thread and lets the larger ones (convolutions from a few images up) use both
// cores.
constexpr double kMinNsPerThread = 100'000.0;

// GEMM products with at most this many rows of micro-tiles read B in place (rows through its
// stride, vector loads) instead of packing it: each B element then meets at most this many
// tiles, too few to amortise a packed copy.
constexpr int64_t kSmallGemmMaxRowTiles = 4;

}  // namespace fastcnn::tuning
