// Float32 CPU kernels of HDR-VDP-2: the fused masking stage and the bicubic resize; native.py compiles this file on
// first use and calls it, and masking.py's and resize.py's torch code computes the same numbers (the tests compare).
//
// The torch form makes about forty passes over every band element (ten of them exp/log), each writing a full-size
// temporary; here each element is read once and its whole chain (CSF lookup, the three masking powers, the
// divisive normalisation, D, its psychometric power and the pooling sum) runs in registers.
//
// exp and log are written out below (Cephes' single-precision polynomials, about 1 ulp) rather than called from
// libm, so that the compiler can vectorise the loops on any x86/ARM CPU without -ffast-math; zero arguments are
// handled by explicit selects, never through infinities.
//
// Layout: a band is a contiguous (N, O, h, w) array; per-pixel planes (adapting luminance, difference mask) are
// (N, 1, h, w). Rows (n, y) are split into contiguous ranges, one per OpenMP thread (built with -fopenmp inside a
// torch process the library binds to torch's own OpenMP runtime and shares its thread pool).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

inline float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

inline uint32_t float_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// e^x for finite x: 0 below -87.34 (where e^x leaves the normal range), +inf above 88.72.
inline float exp_f(float x) {
  const float lo = -87.336544f;
  const bool under = x < lo;
  float xc = std::min(std::max(x, lo), 88.72f);
  const float fx = std::floor(xc * 1.44269504088896341f + 0.5f);
  xc = xc - fx * 0.693359375f - fx * -2.12194440e-4f;
  const float z = xc * xc;
  float y = 1.9875691500e-4f;
  y = y * xc + 1.3981999507e-3f;
  y = y * xc + 8.3334519073e-3f;
  y = y * xc + 4.1665795894e-2f;
  y = y * xc + 1.6666665459e-1f;
  y = y * xc + 5.0000001201e-1f;
  y = y * z + xc + 1.0f;
  const int32_t e = static_cast<int32_t>(fx) + 127;  // 1 .. 255 after the clamp; 255 is the pattern of +inf
  y = y * bits_to_float(static_cast<uint32_t>(e) << 23);
  return under ? 0.0f : y;
}

// ln x for x > 0 (normal or subnormal); the callers never pass 0 or negative values to it.
inline float log_f(float x) {
  const bool sub = x < 1.17549435e-38f;  // subnormal: scaled by 2^23 first
  x = sub ? x * 8388608.0f : x;
  const uint32_t u = float_to_bits(x);
  float e = static_cast<float>(static_cast<int32_t>((u >> 23) & 0xffu) - 126) - (sub ? 23.0f : 0.0f);
  float m = bits_to_float((u & 0x007fffffu) | 0x3f000000u);  // in [0.5, 1)
  const bool small = m < 0.707106781186547524f;
  e = small ? e - 1.0f : e;
  m = small ? m + m - 1.0f : m - 1.0f;
  const float z = m * m;
  float y = 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  y += -2.12194440e-4f * e;
  y += -0.5f * z;
  return m + y + 0.693359375f * e;
}

// Calls body(r0, r1) for `threads` contiguous ranges [r0, r1) of [0, total), one per OpenMP thread.
template <typename F>
void split(int64_t total, int threads, F body) {
  threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, total)));
#pragma omp parallel for num_threads(threads) schedule(static, 1)
  for (int t = 0; t < threads; ++t) body(t, total * t / threads, total * (t + 1) / threads);
}


// The per-element chain of hdrbench_vdp_band over one row of one orientation (see there); restrict-qualified
// parameters, so that the compiler vectorises the loop without run-time alias checks.
struct BandConstants {
  float q, p, inv_2p, d_add, s_mul, s_add;
};

__attribute__((noinline)) int band_row(const float* __restrict mo, const float* __restrict xo, const float* __restrict xn,
             const float* __restrict pc_self, const float* __restrict pc_xo, const float* __restrict pc_xn,
             const float* __restrict np2, const float* __restrict tr, const float* __restrict rr,
             const float* __restrict dmr, const BandConstants& k, int64_t w, float* __restrict dbuf,
             float* __restrict sr, float* __restrict prod) {
  const float fq = k.q, fp = k.p, inv_2p = k.inv_2p, d_add = k.d_add, s_mul = k.s_mul, s_add = k.s_add;
  int of = 0;
  // Zero arguments of the logarithms are replaced by 1 and their terms selected to 0 afterwards (branch-free, so
  // the loop vectorises); the values equal the torch code's exp(-inf) = 0.
  for (int64_t x = 0; x < w; ++x) {
    const float mv = mo[x], xv = xo[x], nv = xn[x];
    float t1 = exp_f(fq * log_f(mv > 0.0f ? mv : 1.0f) + pc_self[x]);
    float t2 = exp_f(fq * log_f(xv > 0.0f ? xv : 1.0f) + pc_xo[x]);
    float t3 = exp_f(fq * log_f(nv > 0.0f ? nv : 1.0f) + pc_xn[x]);
    t1 = mv > 0.0f ? t1 : 0.0f;
    t2 = xv > 0.0f ? t2 : 0.0f;
    t3 = nv > 0.0f ? t3 : 0.0f;
    const float nmask = t1 + t2 + t3;
    const float den2 = np2[x] + nmask * nmask;
    of |= (den2 <= 3.40282347e38f && np2[x] >= 1.17549435e-38f) ? 0 : 1;
    const float diff = tr[x] - rr[x];
    const float ad = std::fabs(diff);
    const float lx = log_f(ad > 0.0f ? ad : 1.0f) - log_f(den2) * inv_2p;
    float dv = std::copysign(exp_f(fp * lx + d_add), diff);
    // D_psy = sign(D) |D / b|^pf b = D exp((pf - 1) (ln|D| - ln b)); pf - 1 is about 1e-7, so the exponent is below
    // 1e-4 in magnitude and exp(z) = 1 + z + z^2 / 2 to float32 precision (one exp fewer per element).
    const float z = s_mul * (fp * lx + d_add) + s_add;
    float sv = dv + dv * (z + 0.5f * z * z);
    dv = ad > 0.0f ? dv : 0.0f;
    sv = ad > 0.0f ? sv : 0.0f;
    dbuf[x] = dv;
    sr[x] = sv;
    prod[x] = dv * dmr[x];
  }
  return of;
}

// Per pixel of one row: the band's CSF at the adapting luminance (linear interpolation of the table, as csf.lookup),
// the noise N = 1 / CSF, N^(2p) and the per-pixel parts -q ln N + c of the three masking exponents.
__attribute__((noinline)) void csf_row(const float* __restrict la, const float* __restrict lut, int64_t lut_size,
                                       float fp, float fq, float c_self, float c_xo, float c_xn, int64_t w,
                                       float* __restrict np2, float* __restrict pc_self, float* __restrict pc_xo,
                                       float* __restrict pc_xn) {
  const float lut_step = static_cast<float>(10.0 / static_cast<double>(lut_size - 1));
  const float last = static_cast<float>(lut_size - 2);
  for (int64_t x = 0; x < w; ++x) {
    const float v = std::min(std::max(la[x], -5.0f), 5.0f);
    const float pos = (v + 5.0f) / lut_step;
    const float idx = std::min(std::max(std::floor(pos), 0.0f), last);
    const int32_t i = static_cast<int32_t>(idx);
    const float csf = lut[i] + (lut[i + 1] - lut[i]) * (pos - idx);
    const float lnz = log_f(1.0f / csf);
    const float np = exp_f(fp * lnz);
    np2[x] = np * np;
    const float pl = -fq * lnz;
    pc_self[x] = pl + c_self;
    pc_xo[x] = pl + c_xo;
    pc_xn[x] = pl + c_xn;
  }
}

// out[:] = sum_k w[k] in[idx[k] * W + :] over K taps, one output row of the row pass (vectorised along the row).
__attribute__((noinline)) void resize_row_taps(const float* __restrict in, const int32_t* __restrict idx,
                                               const float* __restrict w, int64_t K, int64_t W,
                                               float* __restrict out) {
  const float* src0 = in + static_cast<int64_t>(idx[0]) * W;
  const float w0 = w[0];
  for (int64_t x = 0; x < W; ++x) out[x] = w0 * src0[x];
  for (int64_t k = 1; k < K; ++k) {
    const float* __restrict src = in + static_cast<int64_t>(idx[k]) * W;
    const float wk = w[k];
    for (int64_t x = 0; x < W; ++x) out[x] += wk * src[x];
  }
}

// out[x] = sum_k w[k, x] row[idx[k, x]] for x < w_out: one row of the column pass, the taps stored tap-major so that
// the loop over x vectorises (one gather per tap and vector).
__attribute__((noinline)) void resize_col_taps(const float* __restrict row, const int32_t* __restrict idx,
                                               const float* __restrict w, int64_t K, int64_t w_out,
                                               float* __restrict out) {
  for (int64_t x = 0; x < w_out; ++x) out[x] = w[x] * row[idx[x]];
  for (int64_t k = 1; k < K; ++k) {
    const int32_t* __restrict ik = idx + k * w_out;
    const float* __restrict wk = w + k * w_out;
    for (int64_t x = 0; x < w_out; ++x) out[x] += wk[x] * row[ik[x]];
  }
}

// matlabPyrTools' pointOp on log10 of the response clamped to the table's [1e-5, 1e5] (photoreceptors.point_op): the
// interval index clamped to [0, n - 2], linear interpolation (extrapolation outside the grid).
inline float transducer(float r, const float* __restrict table, const float* __restrict slope, float first,
                        float inv_step, float last) {
  const float v = log_f(std::min(std::max(r, 1e-5f), 1e5f)) * 0.434294481903251828f;  // log10
  const float pos = (v - first) * inv_step;
  const float idx = std::min(std::max(std::floor(pos), 0.0f), last);
  const int32_t i = static_cast<int32_t>(idx);
  return slope[i] * (pos - idx) + table[i];
}

// One image's pixels [q0, q1): receptor responses R = M^T rgb (L, M, rod), the transducer outputs P_cone = T_c(L) +
// T_c(M) and P_rod = T_r(rod), the adapting luminance L + M, and the sums of P_cone and P_rod (for the means).
// C (1 or 3 channels) is a template parameter so that the channel sum unrolls and the pixel loop vectorises.
template <int C>
__attribute__((noinline)) void receptors_span(const float* __restrict img, int64_t P, const float* __restrict m,
                                              const float* __restrict cone, const float* __restrict cone_slope,
                                              const float* __restrict rod, const float* __restrict rod_slope,
                                              float first, float inv_step, float last, int64_t q0, int64_t q1,
                                              float* __restrict p_c, float* __restrict p_r, float* __restrict l_adapt,
                                              double* sum_c, double* sum_r) {
  for (int64_t q = q0; q < q1; ++q) {
    float rl = m[0] * img[q], rm = m[1] * img[q], rr = m[3] * img[q];
    for (int c = 1; c < C; ++c) {
      const float v = img[c * P + q];
      rl += m[c * 4 + 0] * v;
      rm += m[c * 4 + 1] * v;
      rr += m[c * 4 + 3] * v;
    }
    p_c[q] = transducer(rl, cone, cone_slope, first, inv_step, last) +
             transducer(rm, cone, cone_slope, first, inv_step, last);
    p_r[q] = transducer(rr, rod, rod_slope, first, inv_step, last);
    l_adapt[q] = rl + rm;
  }
  double sc = 0.0, sr = 0.0;
#pragma omp simd reduction(+ : sc, sr)
  for (int64_t q = q0; q < q1; ++q) {
    sc += static_cast<double>(p_c[q]);
    sr += static_cast<double>(p_r[q]);
  }
  *sum_c += sc;
  *sum_r += sr;
}

}  // namespace

extern "C" {

int hdrbench_vdp_abi(void) { return 1; }

int hdrbench_vdp_openmp(void) {
#ifdef _OPENMP
  return 1;
#else
  return 0;
#endif
}

// m = box3x3(min(|t|, |r|)) / 9 with zeros outside, per (h, w) plane; the same order of additions as the torch
// form (three horizontal neighbours, then three rows), so the values are identical.
void hdrbench_vdp_mutual_masking(const float* t, const float* r, int64_t planes, int64_t h, int64_t w, int threads,
                                 float* m) {
  split(planes * h, threads, [&](int, int64_t r0, int64_t r1) {
    std::vector<float> rows(3 * (w + 2)), scratch(w + 2);
    for (int64_t row = r0; row < r1; ++row) {
      const int64_t plane = row / h, y = row % h;
      float* out = m + plane * h * w + y * w;
      for (int64_t k = 0; k < 3; ++k) {
        float* hs = rows.data() + k * (w + 2);
        const int64_t yy = y + k - 1;
        if (yy < 0 || yy >= h) {
          std::fill(hs, hs + w, 0.0f);
          continue;
        }
        const float* tr = t + plane * h * w + yy * w;
        const float* rr = r + plane * h * w + yy * w;
        float* a = scratch.data();  // |min| of the row, padded by one zero each side
        a[0] = 0.0f;
        for (int64_t x = 0; x < w; ++x) a[x + 1] = std::min(std::fabs(tr[x]), std::fabs(rr[x]));
        a[w + 1] = 0.0f;
        for (int64_t x = 0; x < w; ++x) hs[x] = a[x] + a[x + 1] + a[x + 2];
      }
      const float* h0 = rows.data();
      const float* h1 = h0 + (w + 2);
      const float* h2 = h1 + (w + 2);
      for (int64_t x = 0; x < w; ++x) out[x] = (h0[x] + h1[x] + h2[x]) / 9.0f;
    }
  });
}

// One band of the masking model (masking.py, _differences_fast) and its pooling sums.
//
// t, r, m:        (N, O, h, w) test band, reference band, their mutual masking.
// lo, hi:         neighbouring-band masking resized to (h, w): (N, o_lo, h, w) / (N, o_hi, h, w) with o_x 1 or O
//                 (one orientation stands in for all), or null; multiplied by lo_scale / hi_scale after max(., 0).
// log_la, lut:    resized log10 adapting luminance (N, 1, h, w) and the band's CSF table (lut_size values on
//                 log10 L_a = -5 + k * 10 / (lut_size - 1)); null log_la: the base band, CSF noise 1.
// dm:             (N, 1, h, w) resized pixel difference mask.
// d_out:          (N, O, h, w) D, or null; psy_out: (N, O, h, w) psychometric band sign(D) |D / b|^pf b.
// sq:             (N, O) sums over the band of (D dm)^2 in double.
// Returns 0, or 1 when N^(2p) + N_mask^2 left float32's normal range somewhere (the caller then recomputes the
// band with the torch code's overflow-safe hypot).
int hdrbench_vdp_band(const float* t, const float* r, const float* m, const float* lo, int64_t o_lo, float lo_scale,
                      const float* hi, int64_t o_hi, float hi_scale, const float* log_la, const float* lut,
                      int64_t lut_size, const float* dm, int64_t N, int64_t O, int64_t h, int64_t w, double p,
                      double q, double pf, double log_k_self, double log_k_xo, double log_k_xn, int band,
                      int threads, float* d_out, float* psy_out, double* sq) {
  const int64_t plane = h * w;
  const double lb = std::log(2.0) * band;
  const float fp = static_cast<float>(p), fq = static_cast<float>(q);
  // The constants of the exponents, rounded to float32 as the torch code's scalar operands are.
  const float c_self = static_cast<float>(log_k_self + (1.0 - q) * lb);
  const float c_xo = static_cast<float>(log_k_xo + (1.0 - q) * lb);
  const float c_xn = static_cast<float>(log_k_xn + lb);
  const float inv_2p = static_cast<float>(0.5 / p);
  const double cst = (1.0 - p) * lb;  // ln|D| = p x + cst
  const float d_add = static_cast<float>(cst);
  const float s_mul = static_cast<float>(pf - 1.0), s_add = static_cast<float>(-(pf - 1.0) * lb);
  const BandConstants k{fq, fp, inv_2p, d_add, s_mul, s_add};
  const float base_np = 1.0f;  // the base band: N = 1, N^p = 1, ln N = 0
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, N * h)));
  std::vector<double> partial(static_cast<size_t>(nt) * N * O, 0.0);
  std::vector<int> overflow(nt, 0);
  split(N * h, nt, [&](int tid, int64_t r0, int64_t r1) {
    std::vector<float> buf(9 * w);
    float* __restrict pc_self = buf.data();  // -q ln N + c_self, per pixel of the row
    float* __restrict pc_xo = pc_self + w;
    float* __restrict pc_xn = pc_xo + w;
    float* __restrict np2 = pc_xn + w;       // N^(2p)
    float* __restrict msum = np2 + w;        // sum of m over the orientations
    float* __restrict xo = msum + w;
    float* __restrict xn = xo + w;
    float* __restrict dbuf = xn + w;        // D of the row
    float* __restrict prod = dbuf + w;      // D times the difference mask
    double* acc = partial.data() + static_cast<size_t>(tid) * N * O;
    int of = 0;
    if (log_la == nullptr) {  // the base band: the per-pixel parts are the same constants in every row
      for (int64_t x = 0; x < w; ++x) {
        np2[x] = base_np;
        pc_self[x] = c_self;
        pc_xo[x] = c_xo;
        pc_xn[x] = c_xn;
      }
    }
    for (int64_t row = r0; row < r1; ++row) {
      const int64_t n = row / h, y = row % h;
      const int64_t pix = n * plane + y * w;  // offset of the row in a (N, 1, h, w) plane
      if (log_la != nullptr) {
        csf_row(log_la + pix, lut, lut_size, fp, fq, c_self, c_xo, c_xn, w, np2, pc_self, pc_xo, pc_xn);
      }
      for (int64_t x = 0; x < w; ++x) msum[x] = 0.0f;
      for (int64_t o = 0; o < O; ++o) {
        const float* __restrict mo = m + (n * O + o) * plane + y * w;
        for (int64_t x = 0; x < w; ++x) msum[x] += mo[x];
      }
      const float* __restrict dmr = dm + pix;
      for (int64_t o = 0; o < O; ++o) {
        const int64_t off = (n * O + o) * plane + y * w;
        const float* __restrict tr = t + off;
        const float* __restrict rr = r + off;
        const float* __restrict mo = m + off;
        if (lo != nullptr) {
          const float* __restrict lor = lo + (n * o_lo + (o_lo == 1 ? 0 : o)) * plane + y * w;
          for (int64_t x = 0; x < w; ++x) xn[x] = std::max(lor[x], 0.0f) * lo_scale;
        } else {
          for (int64_t x = 0; x < w; ++x) xn[x] = 0.0f;
        }
        if (hi != nullptr) {
          const float* __restrict hir = hi + (n * o_hi + (o_hi == 1 ? 0 : o)) * plane + y * w;
          for (int64_t x = 0; x < w; ++x) xn[x] += std::max(hir[x], 0.0f) * hi_scale;
        }
        for (int64_t x = 0; x < w; ++x) xo[x] = std::max(msum[x] - mo[x], 0.0f);
        float* __restrict sr = psy_out + off;
        of |= band_row(mo, xo, xn, pc_self, pc_xo, pc_xn, np2, tr, rr, dmr, k, w, dbuf, sr, prod);
        double s2 = 0.0;
#pragma omp simd reduction(+ : s2)
        for (int64_t x = 0; x < w; ++x) {
          const double dp = static_cast<double>(prod[x]);
          s2 += dp * dp;
        }
        if (d_out != nullptr) std::memcpy(d_out + off, dbuf, sizeof(float) * w);
        acc[n * O + o] += s2;
      }
    }
    overflow[tid] = of;
  });
  for (int64_t k = 0; k < N * O; ++k) {
    double s = 0.0;
    for (int tt = 0; tt < nt; ++tt) s += partial[static_cast<size_t>(tt) * N * O + k];
    sq[k] = s;
  }
  int any = 0;
  for (int v : overflow) any |= v;
  return any;
}

// One pass of the separable resize along the rows: out[p, y, :] = sum_k wts[y, k] in[p, idx[y, k], :], for P planes
// of (H, W) -> (h, W). idx/wts: (h, K) taps (the non-zeros of the resize matrix's row y, zero-weight padded).
void hdrbench_vdp_resize_rows(const float* in, int64_t P, int64_t H, int64_t W, const int32_t* idx, const float* wts,
                              int64_t h, int64_t K, int threads, float* out) {
  split(P * h, threads, [&](int, int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      const int64_t p = row / h, y = row % h;
      resize_row_taps(in + p * H * W, idx + y * K, wts + y * K, K, W, out + row * W);
    }
  });
}

// The same along the columns: out[p, y, x] = sum_k wts[k, x] in[p, y, idx[k, x]], (H, W) -> (H, w); idx/wts: (K, w).
void hdrbench_vdp_resize_cols(const float* in, int64_t P, int64_t H, int64_t W, const int32_t* idx, const float* wts,
                              int64_t w, int64_t K, int threads, float* out) {
  split(P * H, threads, [&](int, int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) resize_col_taps(in + row * W, idx, wts, K, w, out + row * w);
  });
}

// The photoreceptor stage (photoreceptors.receptor_responses, adapting_luminance and transduce before the mean
// removal) for N images of C channels and P pixels: p_c, p_r, l_adapt are (N, P); sums (N, 2) receive the sums of
// p_c and p_r over each image. m: (C, 4) channel -> (L, M, S, rod) matrix; tables: n_tab values on log10 L =
// first + k step. C must be 1 or 3 (returns 1 otherwise, else 0).
int hdrbench_vdp_receptors(const float* img, int64_t N, int64_t C, int64_t P, const float* m, const float* cone,
                            const float* rod, int64_t n_tab, double first, double step, int threads, float* p_c,
                            float* p_r, float* l_adapt, double* sums) {
  if (C != 1 && C != 3) return 1;
  std::vector<float> cone_slope(n_tab - 1), rod_slope(n_tab - 1);
  for (int64_t k = 0; k + 1 < n_tab; ++k) {  // table[1:] - table[:-1], as the torch code
    cone_slope[k] = cone[k + 1] - cone[k];
    rod_slope[k] = rod[k + 1] - rod[k];
  }
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, N * P / 4096 + 1)));
  std::vector<double> part(static_cast<size_t>(nt) * N * 2, 0.0);
  const float ffirst = static_cast<float>(first), inv_step = static_cast<float>(1.0 / step);
  const float last = static_cast<float>(n_tab - 2);
  split(N * P, nt, [&](int tid, int64_t r0, int64_t r1) {
    while (r0 < r1) {  // the range may span images: one call per image part
      const int64_t n = r0 / P, q0 = r0 % P, q1 = std::min(P, q0 + (r1 - r0));
      double* acc = part.data() + (static_cast<size_t>(tid) * N + n) * 2;
      if (C == 3) {
        receptors_span<3>(img + n * C * P, P, m, cone, cone_slope.data(), rod, rod_slope.data(), ffirst, inv_step,
                          last, q0, q1, p_c + n * P, p_r + n * P, l_adapt + n * P, acc, acc + 1);
      } else {
        receptors_span<1>(img + n * C * P, P, m, cone, cone_slope.data(), rod, rod_slope.data(), ffirst, inv_step,
                          last, q0, q1, p_c + n * P, p_r + n * P, l_adapt + n * P, acc, acc + 1);
      }
      r0 += q1 - q0;
    }
  });
  for (int64_t k = 0; k < N * 2; ++k) {
    double v = 0.0;
    for (int t = 0; t < nt; ++t) v += part[static_cast<size_t>(t) * N * 2 + k];
    sums[k] = v;
  }
  return 0;
}

}  // extern "C"
