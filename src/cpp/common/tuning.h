// Machine-model constants that decide how a call is run, kept in one place: when a parallel
// region is worth its threads, when a GEMM is small enough to skip packing or long enough to
// split its reduction, how the convolutions block their work and which of their algorithms
// the default order prefers (conv/algorithms.cpp). The cache blocking of each GEMM
// configuration stays beside its micro-kernel table (gemm/gemm.cpp).
//
// Measured on the development machine (AMD Zen 4, 2 cores, AVX-512), see docs/performance.md.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace fastcnn::tuning {

// What one core does per nanosecond in fastcnn's kernels, roughly: multiply-add code runs at
// ~100 float32 GFLOP/s (half for float64) and streaming code moves ~30 bytes/ns through the
// caches. Used only to turn a region's work (flops, bytes) into an estimated time.
constexpr double kFlopsPerNs = 64.0;
constexpr double kBytesPerNs = 32.0;

// THE threshold: a parallel region gets another thread only if every thread then has at least
// this much estimated work (ns). Waking a sleeping pool thread costs the caller a system call
// (a few us) and the helper 10-50 us before it claims a part; the caller meanwhile works on its
// own part, and takes the helper's part too if the helper has not started (common/parallel.cpp),
// so a late helper costs little. Measured over DeepConvNet's convolutions, pools and ReLUs at
// batch 2-8 (bench_small's cases, idle and with one core busy): 20 us against 50 us, 3 % faster
// idle and 1 % slower loaded; against the 250 us that OpenMP's barrier needed, conv5 forward
// at batch 8 went from 198 to 134 us idle, affine1's backward at batch 32 from 123 to 79 us.
constexpr double kMinNsPerThread = 20'000.0;

// How long a pool thread spins for the next region after finishing one before it sleeps (the
// next layer's region usually follows within microseconds), and how long a waiting thread
// spins before it yields its CPU to others between checks.
constexpr std::chrono::microseconds kHelperSpin{50};
constexpr std::chrono::microseconds kSpinBeforeYield{20};

// GEMM products with at most this many rows of micro-tiles read B in place (rows through its
// stride, vector loads) instead of packing it: each B element then meets at most this many
// tiles, too few to amortise a packed copy.
constexpr int64_t kSmallGemmMaxRowTiles = 4;

// Split-K (gemm_driver.h) runs a product with fewer than this many micro-tiles whose
// reduction is at least kSplitKMinBlocks KC blocks long, in chunks of kSplitKChunkBlocks KC
// blocks (fixed by the shape, so the sum's order does not depend on threads).
constexpr int64_t kSplitKMaxTiles = 16;
constexpr int64_t kSplitKMinBlocks = 8;
constexpr int64_t kSplitKChunkBlocks = 4;

// A weight gradient sums over the batch in at most this many fixed chunks of images (one per
// thread's share, whatever the thread count; the chunks are then added in order). Changing it
// changes the rounding of every weight gradient.
constexpr int64_t kWeightGradientChunks = 16;

// The direct convolutions over pixel rows (forward "direct_pixels", and the weight gradient)
// work on groups of images: enough output pixels for long runs of full micro-tiles, but at
// most kPixelGroupMaxImages images and, beyond one image, kPixelGroupMaxBytes of padded input.
constexpr int64_t kPixelGroupPixels = 256;
constexpr int64_t kPixelGroupMaxImages = 16;
constexpr int64_t kPixelGroupMaxBytes = int64_t{1} << 20;

// The forward's choice between "direct_columns" and "direct_pixels" (unit strides) weighs the
// share of useful multiply-adds in their tiles by the epilogue's cost, counted in steps of the
// reduction per tile: copying row-padded columns out costs about 8, transposing pixel rows 24.
constexpr double kColumnsEpilogueSteps = 8.0;
constexpr double kPixelsEpilogueSteps = 24.0;

// Unit-stride backward-data runs as a forward convolution (flipped weights) only with at least
// this many input channels: they become that forward's output channels, and fewer leave its
// micro-tiles mostly empty (the col2im form is then faster).
constexpr int64_t kFlippedMinInputChannels = 8;

// Winograd F(2x2, 3x3) pays per call for its weight transform (16 transformed and packed
// copies of the weights; the weight gradient's 16 C x K partial sums and their transform back)
// and saves per 2x2 output tile: both scale with C*K, so the break-even is a number of tiles,
// N * ceil(P/2) * ceil(Q/2). Measured against the direct form (DeepConvNet's layers at batch
// 1, 3 and 8, one thread): the forward broke even at ~200-250 tiles (conv6 64->64 at 8x8, 128
// tiles: 0.42 vs 0.39 ms direct; 1 image: 0.24 vs 0.09 ms), the weight gradient at ~130-190.
constexpr int64_t kWinogradForwardMinTiles = 256;
constexpr int64_t kWinogradWeightsMinTiles = 128;

// Winograd's channel break-evens against the direct form (same machine): at least 8 input and
// 8 output channels; the forward needs 16 output channels (fewer fill half a 16-wide
// micro-tile), the weight gradient 256 channel pairs (below, 8 x 8 or 12 x 12, the transforms
// dominate). With the portable scalar micro-kernels Winograd measured 1.7x slower than the
// direct form on DeepConvNet's layers, so it is preferred only with SIMD kernels.
constexpr int64_t kWinogradMinChannels = 8;
constexpr int64_t kWinogradForwardMinOutputChannels = 16;
constexpr int64_t kWinogradWeightsMinChannelPairs = 256;

// Winograd works in blocks of tile rows whose transformed input and products (16 points x
// tiles x (C + K) values) take about this many bytes, so they stay in L2; the weight
// gradient's blocks hold at least kWinogradWeightsMinBlockTiles tiles (its GEMMs reduce over
// a block's tiles).
constexpr int64_t kWinogradBlockBytes = int64_t{256} << 10;
constexpr int64_t kWinogradWeightsMinBlockTiles = 64;

// Winograd F(4x4, 3x3) (winograd4.h) against F(2x2, 3x3), where F(2x2) is preferred.
// Measured on DeepConvNet's layers (docs/performance.md, "Winograd F(4x4, 3x3)"), float32,
// loaded machine, best of 15-25 rounds: at batch 100 the forward took 0.67-0.84x F(2x2)'s
// time on conv2 (28x28), 0.74-0.87x on conv4 (16x16 out), 0.85-0.98x on conv6 (8x8); on 14x14
// outputs (conv3; conv3/conv4's backward-data) 0.9-1.06x, because 4x4 tiles pad 14 to 16 and
// keep 0.73 of F(2x2)'s multiplies instead of 0.56. At batch 8 it lost on 8x8 (32 tiles: 1.6x
// F(2x2)'s time, its weight transform is 2.25x larger) and tied at 128 tiles. So the default
// order takes it from 256 4x4 tiles, N * ceil(P/4) * ceil(Q/4), and only where its multiplies
// are at most 0.6 of F(2x2)'s (36 per 4x4 tile against 16 per 2x2 tile, edge tiles whole).
constexpr int64_t kWinogradF4ForwardMinTiles = 256;
constexpr double kWinogradF4MaxMultiplies = 0.6;

// Each thread's scratch cache (common/memory.cpp) keeps at most this many bytes of freed
// blocks, in at most kWorkspaceCacheSlots blocks; a larger block is freed when released. 4 MiB
// holds what DeepConvNet's training step at batch 100 takes on one thread (3.9 MiB on the
// calling thread, with conv6's weight-gradient partial sums 2.25 MiB of it). Blocks of
// kWorkspaceMapBytes or more are mapped on their own, outside malloc's heap.
constexpr std::size_t kWorkspaceCacheBytes = std::size_t{4} << 20;
constexpr int kWorkspaceCacheSlots = 32;
constexpr std::size_t kWorkspaceMapBytes = std::size_t{64} << 10;

}  // namespace fastcnn::tuning
