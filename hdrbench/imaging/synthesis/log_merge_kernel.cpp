// Fused CPU kernels of the synthesis layer's common case (tabulated inverse CRF, nearest lookup, log merge,
// detached weights); native.py compiles this file on first use and calls it, and fused.py's torch node
// computes the same numbers.
//
// Layout: the stack x is a contiguous (N, E, C, P) array (P = H * W pixels); the tables L (forward,
// ln(max(T, floor) + delta)) and S (backward, the centred slope over the same) are (N, C, 256); the
// log exposure times are (N, E); per-pixel outputs are (N, C, P). The N * C * P output pixels are split
// into `threads` contiguous ranges, run on OpenMP threads when built with -fopenmp. Built that way inside
// a torch process, the library binds to torch's own OpenMP runtime (same soname), so the kernels share
// torch's thread pool instead of competing with its spinning threads.
//
// Arithmetic follows the torch node operation for operation (same rounding of x * 255, same weight
// expressions and constants cast to the array type, same order of the sums over exposures; the build
// uses -ffp-contract=off so no multiply-add is fused), so the two give the same values.

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace {

constexpr int64_t kLevels = 256;
constexpr int64_t kBlock = 256;  // pixels per block: the block's accumulators stay in L1

enum Weight { kAll = 0, kHat = 1, kBox = 2, kDeb97 = 3, kRobertson = 4 };

// Constants of the weight functions of weights.py, computed in double as Python does, then cast to T.
template <typename T>
struct WeightParams {
  T lo, hi, tr, slope, offset, shift, scale;
  WeightParams(double lo_, double hi_) {
    const double tr_ = (lo_ + hi_) / 2.0;
    const double shift_ = std::exp(-4.0);
    lo = static_cast<T>(lo_);
    hi = static_cast<T>(hi_);
    tr = static_cast<T>(tr_);
    slope = static_cast<T>(-1.0 / tr_);          // deb97: |x - tr| * (-1 / tr) + (tr - lo) / tr
    offset = static_cast<T>((tr_ - lo_) / tr_);
    shift = static_cast<T>(shift_);               // robertson: (exp(-16 (x - 0.5)^2) - e^-4) / (1 - e^-4)
    scale = static_cast<T>(1.0 - shift_);
  }
};

template <typename T, int W>
inline T weight(T v, const WeightParams<T>& p) {
  T w;
  if (W == kAll) {
    w = T(1);
  } else if (W == kHat) {
    w = T(1) - std::pow(T(2) * v - T(1), T(12));
  } else if (W == kBox) {
    w = (v >= p.lo && v <= p.hi) ? T(1) : T(0);
  } else if (W == kDeb97) {
    w = std::fabs(v - p.tr) * p.slope + p.offset;
  } else {
    const T d = v - T(0.5);
    w = (std::exp(T(-16) * (d * d)) - p.shift) / p.scale;
  }
  return std::min(std::max(w, T(0)), T(1));
}

inline int32_t code(float v) { return std::min(std::max(static_cast<int32_t>(std::rint(v * 255.0f)), 0), 255); }
inline int32_t code(double v) { return std::min(std::max(static_cast<int32_t>(std::rint(v * 255.0)), 0), 255); }

// Calls body(plane, first pixel, pixel count) for the pieces of [q0, q1) that lie in one (n, c) plane.
template <typename F>
inline void for_planes(int64_t P, int64_t q0, int64_t q1, F body) {
  for (int64_t q = q0; q < q1;) {
    const int64_t plane = q / P, p = q - plane * P, count = std::min(q1 - q, P - p);
    body(plane, p, count);
    q += count;
  }
}

// Sum of the weights of block [b0, b0 + m) of plane (n, c) over exposures, in the torch node's order.
template <typename T, int W>
inline void block_total(const T* xp, int64_t E, int64_t CP, int64_t b0, int64_t m, const WeightParams<T>& wp,
                        T* tot) {
  for (int64_t i = 0; i < m; ++i) tot[i] = T(0);
  for (int64_t e = 0; e < E; ++e) {
    const T* xe = xp + e * CP + b0;
    for (int64_t i = 0; i < m; ++i) tot[i] += weight<T, W>(xe[i], wp);
  }
}

template <typename T, int W>
int64_t forward(const T* x, int64_t E, int64_t C, int64_t P, int64_t q0, int64_t q1, const T* L, const T* log_t,
                const WeightParams<T>& wp, T saturation, T* log_mean, int64_t* low) {
  int64_t n_low = 0;
  for_planes(P, q0, q1, [&](int64_t plane, int64_t p, int64_t count) {
    const int64_t n = plane / C, c = plane - n * C;
    const T* xp = x + (n * E * C + c) * P;
    const T* table = L + plane * kLevels;
    const T* lt = log_t + n * E;
    for (int64_t b0 = p; b0 < p + count; b0 += kBlock) {
      const int64_t m = std::min(kBlock, p + count - b0);
      T num[kBlock], tot[kBlock];
      for (int64_t i = 0; i < m; ++i) num[i] = tot[i] = T(0);
      for (int64_t e = 0; e < E; ++e) {
        const T* xe = xp + e * C * P + b0;
        const T l = lt[e];
        for (int64_t i = 0; i < m; ++i) {
          const T v = xe[i];
          const T w = weight<T, W>(v, wp);
          num[i] += (table[code(v)] - l) * w;
          tot[i] += w;
        }
      }
      const int64_t q = plane * P + b0;
      T* lm = log_mean + q;
      for (int64_t i = 0; i < m; ++i) lm[i] = num[i] / (tot[i] + T(1e-9));
      for (int64_t i = 0; i < m; ++i) {
        if (tot[i] <= saturation) low[n_low++] = q + i;
      }
    }
  });
  return n_low;
}

template <typename T, int W>
void backward(const T* x, int64_t E, int64_t C, int64_t P, int64_t q0, int64_t q1, const T* S, const T* grad,
              bool grad_is_scalar, const T* hdr, const WeightParams<T>& wp, T* grad_x) {
  for_planes(P, q0, q1, [&](int64_t plane, int64_t p, int64_t count) {
    const int64_t n = plane / C, c = plane - n * C;
    const T* xp = x + (n * E * C + c) * P;
    // A local copy of the table: the output cannot alias it, which lets the compiler vectorise the gather.
    T table[kLevels];
    std::copy(S + plane * kLevels, S + (plane + 1) * kLevels, table);
    for (int64_t b0 = p; b0 < p + count; b0 += kBlock) {
      const int64_t m = std::min(kBlock, p + count - b0), q = plane * P + b0;
      // The total weight is recomputed from the block (still in L1) rather than stored by the forward.
      T coef[kBlock];  // d loss / d log_mean = grad * hdr / (total + 1e-9), as the torch node computes it
      block_total<T, W>(xp, E, C * P, b0, m, wp, coef);
      for (int64_t i = 0; i < m; ++i) coef[i] = ((grad_is_scalar ? grad[0] : grad[q + i]) * hdr[q + i]) /
                                                (coef[i] + T(1e-9));
      for (int64_t e = 0; e < E; ++e) {
        const T* __restrict__ xe = xp + e * C * P + b0;
        T* __restrict__ ge = grad_x + ((n * E + e) * C + c) * P + b0;
        for (int64_t i = 0; i < m; ++i) {
          const T v = xe[i];
          ge[i] = (table[code(v)] * weight<T, W>(v, wp)) * coef[i];
        }
      }
    }
  });
}

// Calls body(t, q0, q1) for `threads` contiguous ranges [q0, q1) of [0, total), one per OpenMP thread.
template <typename F>
void split(int64_t total, int threads, F body) {
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static, 1)
#endif
  for (int t = 0; t < threads; ++t) body(t, total * t / threads, total * (t + 1) / threads);
}

template <typename T, int W>
void forward_split(const T* x, int64_t N, int64_t E, int64_t C, int64_t P, const T* L, const T* log_t,
                   const WeightParams<T>& wp, T sat, int threads, T* log_mean, int64_t* low, int64_t* counts) {
  split(N * C * P, threads, [&](int t, int64_t q0, int64_t q1) {
    counts[t] = forward<T, W>(x, E, C, P, q0, q1, L, log_t, wp, sat, log_mean, low + q0);
  });
}

template <typename T, int W>
void backward_split(const T* x, int64_t N, int64_t E, int64_t C, int64_t P, const T* S, const T* grad,
                    bool scalar, const T* hdr, const WeightParams<T>& wp, int threads, T* grad_x) {
  split(N * C * P, threads, [&](int, int64_t q0, int64_t q1) {
    backward<T, W>(x, E, C, P, q0, q1, S, grad, scalar, hdr, wp, grad_x);
  });
}

template <typename T>
int forward_dispatch(const T* x, int64_t N, int64_t E, int64_t C, int64_t P, const T* L, const T* log_t, int w,
                     double lo, double hi, double saturation, int threads, T* log_mean, int64_t* low,
                     int64_t* counts) {
  const WeightParams<T> wp(lo, hi);
  const T sat = static_cast<T>(saturation);
  threads = std::max(threads, 1);
  switch (w) {
    case kAll: forward_split<T, kAll>(x, N, E, C, P, L, log_t, wp, sat, threads, log_mean, low, counts); return 0;
    case kHat: forward_split<T, kHat>(x, N, E, C, P, L, log_t, wp, sat, threads, log_mean, low, counts); return 0;
    case kBox: forward_split<T, kBox>(x, N, E, C, P, L, log_t, wp, sat, threads, log_mean, low, counts); return 0;
    case kDeb97:
      forward_split<T, kDeb97>(x, N, E, C, P, L, log_t, wp, sat, threads, log_mean, low, counts);
      return 0;
    case kRobertson:
      forward_split<T, kRobertson>(x, N, E, C, P, L, log_t, wp, sat, threads, log_mean, low, counts);
      return 0;
    default: return -1;
  }
}

template <typename T>
int backward_dispatch(const T* x, int64_t N, int64_t E, int64_t C, int64_t P, const T* S, const T* grad,
                      int grad_is_scalar, const T* hdr, int w, double lo, double hi, int threads, T* grad_x) {
  const WeightParams<T> wp(lo, hi);
  const bool sc = grad_is_scalar != 0;
  threads = std::max(threads, 1);
  switch (w) {
    case kAll: backward_split<T, kAll>(x, N, E, C, P, S, grad, sc, hdr, wp, threads, grad_x); return 0;
    case kHat: backward_split<T, kHat>(x, N, E, C, P, S, grad, sc, hdr, wp, threads, grad_x); return 0;
    case kBox: backward_split<T, kBox>(x, N, E, C, P, S, grad, sc, hdr, wp, threads, grad_x); return 0;
    case kDeb97: backward_split<T, kDeb97>(x, N, E, C, P, S, grad, sc, hdr, wp, threads, grad_x); return 0;
    case kRobertson: backward_split<T, kRobertson>(x, N, E, C, P, S, grad, sc, hdr, wp, threads, grad_x); return 0;
    default: return -1;
  }
}

}  // namespace

extern "C" {

// Version of this interface; native.py refuses a library that reports another.
int hdrbench_log_merge_abi() { return 4; }

// 1 when built with OpenMP (the `threads` argument is honoured), else 0 (one thread).
int hdrbench_log_merge_openmp() {
#ifdef _OPENMP
  return 1;
#else
  return 0;
#endif
}

// log_mean = sum_e w_e (L[k_e] - ln t_e) / (sum_e w_e + 1e-9) for every output pixel. The pixels are split
// into `threads` ranges [q0_t, q1_t) with q0_t = total * t / threads (total = N * C * P); range t writes
// the flat indices of its pixels whose total weight sum_e w_e is <= saturation (the fallback's candidates),
// ascending, to low[q0_t], low[q0_t + 1], ... and their number to counts[t]. `low` has room for total
// entries, `counts` for `threads`. Returns 0, or -1 for an unknown weight code.
int hdrbench_log_merge_forward_f32(const float* x, int64_t N, int64_t E, int64_t C, int64_t P, const float* L,
                                   const float* log_t, int w, double lo, double hi, double saturation, int threads,
                                   float* log_mean, int64_t* low, int64_t* counts) {
  return forward_dispatch<float>(x, N, E, C, P, L, log_t, w, lo, hi, saturation, threads, log_mean, low, counts);
}

int hdrbench_log_merge_forward_f64(const double* x, int64_t N, int64_t E, int64_t C, int64_t P, const double* L,
                                   const double* log_t, int w, double lo, double hi, double saturation, int threads,
                                   double* log_mean, int64_t* low, int64_t* counts) {
  return forward_dispatch<double>(x, N, E, C, P, L, log_t, w, lo, hi, saturation, threads, log_mean, low, counts);
}

// grad_x[n, e, c, p] = (S[k] * w(x)) * (grad[n, c, p] * hdr[n, c, p] / (sum_e w_e + 1e-9)) for every
// exposure e and output pixel, with grad read as one value when grad_is_scalar (an expanded gradient, as
// from a sum). Returns 0, or -1 for an unknown weight code.
int hdrbench_log_merge_backward_f32(const float* x, int64_t N, int64_t E, int64_t C, int64_t P, const float* S,
                                    const float* grad, int grad_is_scalar, const float* hdr, int w, double lo,
                                    double hi, int threads, float* grad_x) {
  return backward_dispatch<float>(x, N, E, C, P, S, grad, grad_is_scalar, hdr, w, lo, hi, threads, grad_x);
}

int hdrbench_log_merge_backward_f64(const double* x, int64_t N, int64_t E, int64_t C, int64_t P, const double* S,
                                    const double* grad, int grad_is_scalar, const double* hdr, int w, double lo,
                                    double hi, int threads, double* grad_x) {
  return backward_dispatch<double>(x, N, E, C, P, S, grad, grad_is_scalar, hdr, w, lo, hi, threads, grad_x);
}

}  // extern "C"
