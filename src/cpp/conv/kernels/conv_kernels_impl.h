// The convolution kernels that are not GEMM micro-kernels: the Winograd F(2x2, 3x3) tile
// transforms and the transposing copies between channel-major (NCHW) and pixel-major (HWC)
// layouts, written once over GCC vector extensions. Include it ONLY from a
// kernels/conv_kernels__<isa>.cpp file compiled with that ISA's flags: each instantiates the
// kernels for its ISA (declared in conv/conv_kernels.h).
//
// Winograd F(2x2, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
// 2016): per tile, with d the 4 x 4 input window, g a 3 x 3 filter and m = U (.) V the 4 x 4
// elementwise product summed over input channels, the 2 x 2 output is A^T m A where
//   V = B^T d B,  B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],
//   U = G g G^T,  G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],
//   A^T = [1 1 1 0; 0 1 -1 -1].
// Transform point xi = 4*i + j holds row i, column j of V, U and m.
//
// Winograd F(4x4, 3x3) (the same paper; interpolation points 0, 1, -1, 2, -2 and infinity),
// with d the 6 x 6 window and a 4 x 4 output A^T m A:
//   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0;
//          0 4 0 -5 0 1],
//   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1],
// and G (the weights' transform, in winograd4.cpp) carries all the fractions: B and A have
// small integer entries, so the input and output transforms round only in their additions.
// Transform point xi = 6*i + j holds row i, column j.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "conv/conv_kernels.h"

// Vector values never cross an ABI boundary here (everything is inlined, with internal
// linkage), so GCC's note that 32-byte vectors pass differently without AVX does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace fastcnn {

// Internal linkage: every ISA's file compiles its own copy of these templates with its own
// flags (shared instances would let the linker keep one ISA's code for all).
namespace {

// Vectors of kBytes (GCC vector extensions: one register of the ISA the file is compiled for,
// or several of a narrower one) and plain scalars run the same transform code, so a channel
// gets the same bits in the vector body or the scalar tail.
template <class T, int kBytes>
struct WinogradVec {
  typedef T V __attribute__((vector_size(kBytes)));
  static constexpr int kLanes = kBytes / static_cast<int>(sizeof(T));
  static V load(const T* p) {
    V v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
  }
  static void store(T* p, V v) { __builtin_memcpy(p, &v, sizeof v); }
};

// V = B^T d B for one vector (or scalar) U of channels: load(i, j) reads window pixel (i, j),
// store(xi, v) writes point xi.
template <class U, class Load, class Store>
inline __attribute__((always_inline)) void input_tile(Load&& load, Store&& store) {
  U w[4][4];  // B^T d: rows combined, column by column
  for (int j = 0; j < 4; ++j) {
    const U d0 = load(0, j), d1 = load(1, j), d2 = load(2, j), d3 = load(3, j);
    w[0][j] = d0 - d2;
    w[1][j] = d1 + d2;
    w[2][j] = d2 - d1;
    w[3][j] = d1 - d3;
  }
  for (int i = 0; i < 4; ++i) {  // (B^T d) B: columns combined
    store(4 * i + 0, w[i][0] - w[i][2]);
    store(4 * i + 1, w[i][1] + w[i][2]);
    store(4 * i + 2, w[i][2] - w[i][1]);
    store(4 * i + 3, w[i][1] - w[i][3]);
  }
}

// A^T m A for one vector (or scalar) U of output channels: load(xi) reads point xi,
// store(i, j, v) writes output pixel (i, j).
template <class U, class Load, class Store>
inline __attribute__((always_inline)) void output_tile(Load&& load, Store&& store) {
  U s[2][4];  // A^T m
  for (int j = 0; j < 4; ++j) {
    const U m0 = load(j), m1 = load(4 + j), m2 = load(8 + j), m3 = load(12 + j);
    s[0][j] = m0 + m1 + m2;
    s[1][j] = m1 - m2 - m3;
  }
  for (int i = 0; i < 2; ++i) {
    store(i, 0, s[i][0] + s[i][1] + s[i][2]);
    store(i, 1, s[i][1] - s[i][2] - s[i][3]);
  }
}

// The element type of a vector U (or U itself for a scalar): the type of the constant factors
// the F(4x4) transforms multiply by.
template <class U, bool = std::is_arithmetic_v<U>>
struct ElementOf {
  using type = U;
};
template <class U>
struct ElementOf<U, false> {
  using type = std::remove_cv_t<std::remove_reference_t<decltype(std::declval<U>()[0])>>;
};

// B^T applied to one column (or row) d0..d5 of a 6 x 6 window, as sums of differences.
template <class U>
inline __attribute__((always_inline)) void input_6(const U* d, U* out) {
  using T = typename ElementOf<U>::type;
  const U d12 = d[1] + d[2], d34 = d[3] + d[4], e12 = d[1] - d[2], e34 = d[4] - d[3];
  const U f = d[4] - d[2], h = d[3] - d[1];
  out[0] = (T(4) * d[0] - T(5) * d[2]) + d[4];
  out[1] = d34 - T(4) * d12;
  out[2] = e34 + T(4) * e12;
  out[3] = f + T(2) * h;
  out[4] = f - T(2) * h;
  out[5] = (T(4) * d[1] - T(5) * d[3]) + d[5];
}

// V = B^T d B of a 6 x 6 window (F(4x4, 3x3)): load(i, j) reads window pixel (i, j),
// store(xi, v) writes point xi = 6*i + j.
template <class U, class Load, class Store>
inline __attribute__((always_inline)) void input_tile_f4(Load&& load, Store&& store) {
  U w[6][6];  // B^T d: rows combined, column by column
  for (int j = 0; j < 6; ++j) {
    U col[6], out[6];
    for (int i = 0; i < 6; ++i) col[i] = load(i, j);
    input_6(col, out);
    for (int i = 0; i < 6; ++i) w[i][j] = out[i];
  }
  for (int i = 0; i < 6; ++i) {  // (B^T d) B: columns combined
    U out[6];
    input_6(w[i], out);
    for (int j = 0; j < 6; ++j) store(6 * i + j, out[j]);
  }
}

// A^T applied to one column (or row) m0..m5 of the 36 products.
template <class U>
inline __attribute__((always_inline)) void output_6(const U* m, U* out) {
  using T = typename ElementOf<U>::type;
  const U a = m[1] + m[2], b = m[1] - m[2], c = m[3] + m[4], e = m[3] - m[4];
  out[0] = (m[0] + a) + c;
  out[1] = b + T(2) * e;
  out[2] = a + T(4) * c;
  out[3] = (b + T(8) * e) + m[5];
}

// A^T m A for one vector (or scalar) U of output channels (F(4x4, 3x3)): load(xi) reads point
// xi, store(i, j, v) writes output pixel (i, j).
template <class U, class Load, class Store>
inline __attribute__((always_inline)) void output_tile_f4(Load&& load, Store&& store) {
  U s[4][6];  // A^T m
  for (int j = 0; j < 6; ++j) {
    U col[6], out[4];
    for (int i = 0; i < 6; ++i) col[i] = load(6 * i + j);
    output_6(col, out);
    for (int i = 0; i < 4; ++i) s[i][j] = out[i];
  }
  for (int i = 0; i < 4; ++i) {
    U out[4];
    output_6(s[i], out);
    for (int j = 0; j < 4; ++j) store(i, j, out[j]);
  }
}

// One value of T behind the same interface as WinogradVec.
template <class T>
struct WinogradScalar {
  typedef T V;
  static constexpr int kLanes = 1;
  static V load(const T* p) { return *p; }
  static void store(T* p, V v) { *p = v; }
};

// Calls body(W{}, i) for i in [i0, n) stepping by W's lanes: vectors of kBytes while they fit,
// then of half that width, down to 16 bytes, then single values (so 8 or 12 channels still
// run in vectors). Every lane computes the same operations, so any width gives the same bits.
template <class T, int kBytes, class Body>
inline __attribute__((always_inline)) void for_each_width(int64_t i0, int64_t n, Body&& body) {
  if constexpr (kBytes >= 16) {
    using W = WinogradVec<T, kBytes>;
    int64_t i = i0;
    for (; i + W::kLanes <= n; i += W::kLanes) body(W{}, i);
    for_each_width<T, kBytes / 2>(i, n, body);
  } else {
    for (int64_t i = i0; i < n; ++i) body(WinogradScalar<T>{}, i);
  }
}

// v[xi*vs + t*C + c] = V(xi) of channel c of tile t, whose 4 x 4 window starts at
// x + off[t] in a pixel-major (HWC) image: pixel (i, j) of the window at x + off[t] + i*ws +
// j*C, channel c at + c.
template <class T, int kBytes>
void winograd_input_f2x3(int64_t C, int64_t ntiles, const T* x, const int64_t* off, int64_t ws,
                         T* v, int64_t vs) {
  for (int64_t t = 0; t < ntiles; ++t) {
    const T* d = x + off[t];
    T* out = v + t * C;
    for_each_width<T, kBytes>(0, C, [&](auto w, int64_t c) {
      using W = decltype(w);
      input_tile<typename W::V>([&](int i, int j) { return W::load(d + i * ws + j * C + c); },
                                [&](int xi, auto r) { W::store(out + xi * vs + c, r); });
    });
  }
}

// The 2 x 2 outputs A^T m A of tiles t from m[xi*ms + t*K + k], written pixel-major: pixel
// (i, j) of tile t at y[off[t] + i*ys + j*K + k], for the pixels inside the output (edge[t]
// bit 0: the tile has a right column, bit 1: a bottom row).
template <class T, int kBytes>
void winograd_output_f2x3(int64_t K, int64_t ntiles, const T* m, int64_t ms, T* y,
                          const int64_t* off, const uint8_t* edge, int64_t ys) {
  for (int64_t t = 0; t < ntiles; ++t) {
    const T* src = m + t * K;
    T* out = y + off[t];
    const int rows = edge[t] & 2 ? 2 : 1, cols = edge[t] & 1 ? 2 : 1;
    for_each_width<T, kBytes>(0, K, [&](auto w, int64_t k) {
      using W = decltype(w);
      output_tile<typename W::V>([&](int xi) { return W::load(src + xi * ms + k); },
                                 [&](int i, int j, auto r) {
                                   if (i < rows && j < cols) W::store(out + i * ys + j * K + k, r);
                                 });
    });
  }
}

// F(4x4, 3x3)'s input transform, with the contract of winograd_input_f2x3 over 6 x 6 windows
// and 36 points.
template <class T, int kBytes>
void winograd_input_f4x3(int64_t C, int64_t ntiles, const T* x, const int64_t* off, int64_t ws,
                         T* v, int64_t vs) {
  for (int64_t t = 0; t < ntiles; ++t) {
    const T* d = x + off[t];
    T* out = v + t * C;
    for_each_width<T, kBytes>(0, C, [&](auto w, int64_t c) {
      using W = decltype(w);
      input_tile_f4<typename W::V>([&](int i, int j) { return W::load(d + i * ws + j * C + c); },
                                   [&](int xi, auto r) { W::store(out + xi * vs + c, r); });
    });
  }
}

// F(4x4, 3x3)'s output transform, with the contract of winograd_output_f2x3 over 4 x 4 tiles:
// edge[t] is (columns - 1) | (rows - 1) << 2 of the tile's pixels inside the output.
template <class T, int kBytes>
void winograd_output_f4x3(int64_t K, int64_t ntiles, const T* m, int64_t ms, T* y,
                          const int64_t* off, const uint8_t* edge, int64_t ys) {
  for (int64_t t = 0; t < ntiles; ++t) {
    const T* src = m + t * K;
    T* out = y + off[t];
    const int rows = (edge[t] >> 2) + 1, cols = (edge[t] & 3) + 1;
    for_each_width<T, kBytes>(0, K, [&](auto w, int64_t k) {
      using W = decltype(w);
      output_tile_f4<typename W::V>([&](int xi) { return W::load(src + xi * ms + k); },
                                    [&](int i, int j, auto r) {
                                      if (i < rows && j < cols)
                                        W::store(out + i * ys + j * K + k, r);
                                    });
    });
  }
}

// Z = A g A^T, the transform a weight gradient applies to a 2 x 2 tile g of dy (the adjoint
// of the output transform): load(i, j) reads dy pixel (i, j) of the tile, store(xi, v) writes
// point xi. A = [1 0; 1 1; 1 -1; 0 -1].
template <class U, class Load, class Store>
inline __attribute__((always_inline)) void dy_tile(Load&& load, Store&& store) {
  U z[4][2];  // A g: rows expanded, column by column
  for (int j = 0; j < 2; ++j) {
    const U g0 = load(0, j), g1 = load(1, j);
    z[0][j] = g0;
    z[1][j] = g0 + g1;
    z[2][j] = g0 - g1;
    z[3][j] = -g1;
  }
  for (int i = 0; i < 4; ++i) {  // (A g) A^T: columns expanded
    store(4 * i + 0, z[i][0]);
    store(4 * i + 1, z[i][0] + z[i][1]);
    store(4 * i + 2, z[i][0] - z[i][1]);
    store(4 * i + 3, -z[i][1]);
  }
}

// Z of tiles t < ntiles from pixel-major dy (pixel (i, j) of tile t at dy + off[t] + i*ys +
// j*K, channel k at + k; pixels outside the output, per edge[t], count as 0), written as the
// packed B operand of the weight gradient's GEMMs: channel k of tile t at z[xi*zs +
// (k / nr)*ntiles*nr + t*nr + k % nr], with the last panel's columns past K zero.
template <class T, int kBytes>
void winograd_dy_f2x3(int64_t K, int64_t ntiles, const T* dy, const int64_t* off,
                      const uint8_t* edge, int64_t ys, T* z, int64_t zs, int64_t nr) {
  for (int64_t t = 0; t < ntiles; ++t) {
    const T* src = dy + off[t];
    const int rows = edge[t] & 2 ? 2 : 1, cols = edge[t] & 1 ? 2 : 1;
    for (int64_t p0 = 0; p0 < K; p0 += nr) {     // one panel at a time: no vector straddles two
      T* panel = z + p0 * ntiles + t * nr - p0;  // channel k of this panel at panel[k]
      for_each_width<T, kBytes>(p0, std::min(K, p0 + nr), [&](auto w, int64_t k) {
        using W = decltype(w);
        using V = typename W::V;
        dy_tile<V>(
            [&](int i, int j) {
              return i < rows && j < cols ? W::load(src + i * ys + j * K + k) : V{};
            },
            [&](int xi, V r) { W::store(panel + xi * zs + k, r); });
      });
      for (int64_t k = K; k < p0 + nr; ++k)
        for (int xi = 0; xi < 16; ++xi) panel[xi * zs + k] = T(0);
    }
  }
}

// Transposing copies, a block of L x L values at a time (L = 32 bytes of T: 8 floats or 4
// doubles) through registers; the edges element by element.
template <class T>
struct Block {
  static constexpr int L = 32 / static_cast<int>(sizeof(T));
  using W = WinogradVec<T, 32>;
  using V = typename W::V;
};

// r[l] <- column l of the 8 x 8 block of rows r[0..8) (the unpack / shuffle / lane-swap
// sequence of an AVX transpose).
inline void transpose_block(WinogradVec<float, 32>::V* r) {
  typedef int32_t M __attribute__((vector_size(32)));
  using V = WinogradVec<float, 32>::V;
  const M lo = {0, 8, 1, 9, 4, 12, 5, 13}, hi = {2, 10, 3, 11, 6, 14, 7, 15};
  const M lo2 = {0, 1, 8, 9, 4, 5, 12, 13}, hi2 = {2, 3, 10, 11, 6, 7, 14, 15};
  const M lane_lo = {0, 1, 2, 3, 8, 9, 10, 11}, lane_hi = {4, 5, 6, 7, 12, 13, 14, 15};
  V t[8], s[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = __builtin_shuffle(r[i], r[i + 1], lo);
    t[i + 1] = __builtin_shuffle(r[i], r[i + 1], hi);
  }
  for (int i = 0; i < 8; i += 4) {
    s[i] = __builtin_shuffle(t[i], t[i + 2], lo2);
    s[i + 1] = __builtin_shuffle(t[i], t[i + 2], hi2);
    s[i + 2] = __builtin_shuffle(t[i + 1], t[i + 3], lo2);
    s[i + 3] = __builtin_shuffle(t[i + 1], t[i + 3], hi2);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = __builtin_shuffle(s[i], s[i + 4], lane_lo);
    r[i + 4] = __builtin_shuffle(s[i], s[i + 4], lane_hi);
  }
}

// The same for a 4 x 4 block of doubles.
inline void transpose_block(WinogradVec<double, 32>::V* r) {
  typedef int64_t M __attribute__((vector_size(32)));
  using V = WinogradVec<double, 32>::V;
  const M lo = {0, 4, 2, 6}, hi = {1, 5, 3, 7}, lane_lo = {0, 1, 4, 5}, lane_hi = {2, 3, 6, 7};
  const V t0 = __builtin_shuffle(r[0], r[1], lo), t1 = __builtin_shuffle(r[0], r[1], hi);
  const V t2 = __builtin_shuffle(r[2], r[3], lo), t3 = __builtin_shuffle(r[2], r[3], hi);
  r[0] = __builtin_shuffle(t0, t2, lane_lo);
  r[1] = __builtin_shuffle(t1, t3, lane_lo);
  r[2] = __builtin_shuffle(t0, t2, lane_hi);
  r[3] = __builtin_shuffle(t1, t3, lane_hi);
}

// Calls block(i, j) over L x L blocks covering [0, rows) x [0, cols), and element(i, j) for
// the rest when rows or cols is under L. The last block of each row and column overlaps the
// one before instead of leaving a ragged edge: its elements are written twice with the same
// value.
template <int L, class BlockFn, class ElementFn>
inline __attribute__((always_inline)) void for_each_block(int64_t rows, int64_t cols,
                                                          BlockFn&& block, ElementFn&& element) {
  if (rows < L || cols < L) {
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) element(i, j);
    return;
  }
  for (int64_t i0 = 0; i0 < rows; i0 += L) {
    const int64_t i = std::min<int64_t>(i0, rows - L);
    for (int64_t j0 = 0; j0 < cols; j0 += L) block(i, std::min<int64_t>(j0, cols - L));
  }
}

// Channel rows into pixel-major order: value j of row i, src[i*lds + j], goes to
// dst[(j / run)*drs + (j % run)*ldd + i] for i < rows, j < cols (runs of `run` pixels, an
// image row, start drs apart: a padded pixel-major image). Returns false when a value is
// infinite or NaN (v - v is 0 only for finite v; the sums stay 0 or become NaN).
template <class T>
bool to_pixel_major(const T* src, int64_t rows, int64_t cols, int64_t lds, T* dst, int64_t ldd,
                    int64_t run, int64_t drs) {
  constexpr int L = Block<T>::L;
  using W = typename Block<T>::W;
  using V = typename Block<T>::V;
  V acc[L] = {};
  bool finite = true;
  auto out = [&](int64_t j) { return dst + (j / run) * drs + (j % run) * ldd; };
  for_each_block<L>(
      rows, cols,
      [&](int64_t i, int64_t j) {
        V r[L];
        for (int l = 0; l < L; ++l) {
          r[l] = W::load(src + (i + l) * lds + j);
          acc[l] += r[l] - r[l];
        }
        transpose_block(r);
        // Destination of value j + l: one division per block, then steps along the run.
        int64_t col = j % run;
        T* d = out(j) + i;
        for (int l = 0; l < L; ++l) {
          W::store(d, r[l]);
          if (++col == run) {
            col = 0;
            d += drs - (run - 1) * ldd;
          } else {
            d += ldd;
          }
        }
      },
      [&](int64_t i, int64_t j) {
        const T v = src[i * lds + j];
        out(j)[i] = v;
        finite &= (v - v) == T(0);
      });
  for (int l = 0; l < L; ++l)
    for (int e = 0; e < L; ++e) finite &= acc[l][e] == T(0);
  return finite;
}

// y[k*plane + j] = src[j*lds + k] + b[k] (b may be null), then max(., 0) if relu (NaN stays),
// for pixels j < count and channels k < K: pixel-major products into NCHW. Returns false when
// a value before the ReLU is infinite or NaN (the ReLU would hide a -inf).
template <class T>
bool from_pixel_major(const T* src, int64_t count, int64_t K, int64_t lds, const T* b, bool relu,
                      T* y, int64_t plane) {
  constexpr int L = Block<T>::L;
  using W = typename Block<T>::W;
  using V = typename Block<T>::V;
  V acc[L] = {};
  bool finite = true;
  for_each_block<L>(
      K, count,
      [&](int64_t k, int64_t j) {
        V r[L];
        for (int l = 0; l < L; ++l) r[l] = W::load(src + (j + l) * lds + k);
        transpose_block(r);
        for (int l = 0; l < L; ++l) {
          V out = r[l] + (b != nullptr ? b[k + l] : T(0));
          acc[l] += out - out;
          if (relu) out = out <= V{} ? V{} : out;
          W::store(y + (k + l) * plane + j, out);
        }
      },
      [&](int64_t k, int64_t j) {
        T out = src[j * lds + k] + (b != nullptr ? b[k] : T(0));
        finite &= (out - out) == T(0);
        if (relu && out <= T(0)) out = T(0);
        y[k * plane + j] = out;
      });
  for (int l = 0; l < L; ++l)
    for (int e = 0; e < L; ++e) finite &= acc[l][e] == T(0);
  return finite;
}

}  // namespace

// Defines the ISA's kernels (declared in conv/conv_kernels.h) for float and double.
#define FASTCNN_DEFINE_CONV_KERNELS_FOR(dt, T, isa, bytes)               \
  FASTCNN_DECLARE_WINOGRAD_INPUT(dt##_winograd_input_f2x3__##isa, T) {   \
    winograd_input_f2x3<T, bytes>(C, ntiles, x, off, ws, v, vs);         \
  }                                                                      \
  FASTCNN_DECLARE_WINOGRAD_OUTPUT(dt##_winograd_output_f2x3__##isa, T) { \
    winograd_output_f2x3<T, bytes>(K, ntiles, m, ms, y, off, edge, ys);  \
  }                                                                      \
  FASTCNN_DECLARE_WINOGRAD_DY(dt##_winograd_dy_f2x3__##isa, T) {         \
    winograd_dy_f2x3<T, bytes>(K, ntiles, dy, off, edge, ys, z, zs, nr); \
  }                                                                      \
  FASTCNN_DECLARE_WINOGRAD_INPUT(dt##_winograd_input_f4x3__##isa, T) {   \
    winograd_input_f4x3<T, bytes>(C, ntiles, x, off, ws, v, vs);         \
  }                                                                      \
  FASTCNN_DECLARE_WINOGRAD_OUTPUT(dt##_winograd_output_f4x3__##isa, T) { \
    winograd_output_f4x3<T, bytes>(K, ntiles, m, ms, y, off, edge, ys);  \
  }                                                                      \
  FASTCNN_DECLARE_TO_PIXEL_MAJOR(dt##_to_pixel_major__##isa, T) {        \
    return to_pixel_major<T>(src, rows, cols, lds, dst, ldd, run, drs);  \
  }                                                                      \
  FASTCNN_DECLARE_FROM_PIXEL_MAJOR(dt##_from_pixel_major__##isa, T) {    \
    return from_pixel_major<T>(src, count, K, lds, b, relu, y, plane);   \
  }
// bytes: the vector width the Winograd transforms compute in.
#define FASTCNN_DEFINE_CONV_KERNELS(isa, bytes)           \
  FASTCNN_DEFINE_CONV_KERNELS_FOR(f32, float, isa, bytes) \
  FASTCNN_DEFINE_CONV_KERNELS_FOR(f64, double, isa, bytes)

}  // namespace fastcnn
