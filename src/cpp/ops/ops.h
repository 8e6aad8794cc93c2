// The "small ops" kernel family: activations, softmax + cross-entropy, dropout, batch
// normalisation and fused in-place optimizer updates (float and double). Each driver does one
// or two passes over memory; shapes, dtype promotion and the O(C) per-channel arithmetic are
// the Python layer's job (python/fastcnn/_ops.py). All arrays are C-contiguous; a driver may
// be called with n == 0. Results never depend on the thread count.
#pragma once

#include <cstdint>

namespace fastcnn {

// ---- activations (activation.cpp): x, y, dy, dx are flat arrays of n elements -------------
// y = max(x, 0) as numpy's maximum: NaN propagates, -0 becomes +0.
template <class T>
void relu_forward(int64_t n, const T* x, T* y);
// dx = x > 0 ? dy : +0 (NaN in x gives 0).
template <class T>
void relu_backward(int64_t n, const T* dy, const T* x, T* dx);
// y = (x >= 0 ? 1 : e) / (1 + e) with e = exp(-|x|).
template <class T>
void sigmoid_forward(int64_t n, const T* x, T* y);
// dx = dy * y * (1 - y), evaluated left to right.
template <class T>
void sigmoid_backward(int64_t n, const T* dy, const T* y, T* dx);

// ---- softmax + cross-entropy (softmax_xent.cpp): x, p, t, dx are (N, M) row-major ----------
// p = softmax(x) per row; returns mean_n(-log_softmax(x)[n, labels[n]]), rounded to T.
// labels is (N,), each in [0, M) (checked by the caller).
template <class T>
double softmax_xent_forward_labels(int64_t N, int64_t M, const T* x, const int64_t* labels, T* p);
// As above with float targets t (N, M): returns mean_n(-sum_m t[n,m] * log_softmax(x)[n,m]).
template <class T>
double softmax_xent_forward_targets(int64_t N, int64_t M, const T* x, const T* t, T* p);
// dx = (p - onehot(labels)) * T(scale).
template <class T>
void softmax_xent_backward_labels(int64_t N, int64_t M, const T* p, const int64_t* labels,
                                  double scale, T* dx);
// dx = (p - t) * T(scale).
template <class T>
void softmax_xent_backward_targets(int64_t N, int64_t M, const T* p, const T* t, double scale,
                                   T* dx);

// ---- dropout (dropout.cpp): flat arrays of n elements; masks are bytes holding 0 or 1 ------
// keep[i] = u_i >= ratio with u_i the reference's splitmix64 counter stream (see dropout.cpp).
// Element i uses stream index offset + i (a shard of a larger array: see dropout.cpp).
void dropout_mask(int64_t n, double ratio, uint64_t seed, uint64_t offset, uint8_t* keep);
// keep as above and y = x * keep, in one pass.
template <class T>
void dropout_forward(int64_t n, const T* x, double ratio, uint64_t seed, uint64_t offset,
                     uint8_t* keep, T* y);
// y = x * T(keep != 0): the masked forward pass and the backward pass.
template <class T>
void dropout_apply(int64_t n, const T* x, const uint8_t* keep, T* y);
// y = x * T(scale): inference-mode dropout.
template <class T>
void scale_forward(int64_t n, const T* x, double scale, T* y);

// ---- batch normalisation (batchnorm.cpp) ---------------------------------------------------
// Layout contract: x, y, dy, dx are (N, C, S) row-major, one channel's samples being the
// n-th run of S contiguous elements: (N, D) for batchnorm (S = 1) and (N, C, H*W) for the
// spatial variant. Per-channel vectors (gamma, beta, mean, inv_std, var, dgamma, dbeta) are (C,).
// Reductions run over fixed chunks of N (independent of the thread count) and combine the
// chunks in order, accumulating in double.
struct BnLayout {
  int64_t n, c, s;
};
// mean[c] = T(sum / count); var[c] = T(biased variance about the exact mean).
template <class T>
void batchnorm_stats(const BnLayout& L, const T* x, T* mean, T* var);
// y = gamma * ((x - mean) * inv_std) + beta, per channel.
template <class T>
void batchnorm_apply(const BnLayout& L, const T* x, const T* gamma, const T* beta, const T* mean,
                     const T* inv_std, T* y);
// dbeta = sum dy, dgamma = sum dy * xhat with xhat = (x - mean) * inv_std, and
// dx = (gamma * inv_std / m) * ((m * dy - dbeta) - xhat * dgamma), m = N * S.
template <class T>
void batchnorm_backward(const BnLayout& L, const T* dy, const T* x, const T* gamma, const T* mean,
                        const T* inv_std, T* dx, T* dgamma, T* dbeta);

// ---- optimizer updates (optim.cpp): param, grad and state arrays are flat, n elements ------
// In place, one pass, the reference's numpy expressions evaluated in T with each Python
// scalar rounded to T as numpy does. No two arrays may overlap.
template <class T>
void sgd_update(int64_t n, T* param, const T* grad, double lr);
template <class T>
void momentum_update(int64_t n, T* param, const T* grad, T* velocity, double lr, double momentum);
template <class T>
void nesterov_update(int64_t n, T* param, const T* grad, T* velocity, double lr, double momentum);
template <class T>
void adagrad_update(int64_t n, T* param, const T* grad, T* h, double lr, double eps);
template <class T>
void rmsprop_update(int64_t n, T* param, const T* grad, T* h, double lr, double decay_rate,
                    double eps);
// lr_t = lr * sqrt(1 - beta2**step) / (1 - beta1**step) is computed by the caller.
template <class T>
void adam_update(int64_t n, T* param, const T* grad, T* m, T* v, double lr_t, double beta1,
                 double beta2, double eps);

}  // namespace fastcnn
