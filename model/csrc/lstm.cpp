// The lab's LSTM over a whole sequence, forward and hand-written backward, for CPU tensors.
//
// Same equations and buffers as model/fused_lstm.py (the pure-torch path, which stays the
// fallback and runs on CUDA); this file only removes per-step Python/dispatcher overhead and
// fuses each step's elementwise work into one pass over memory:
//   forward step:  gates = U x_t + b + W h_{t-1} (one addmm), then one loop applies
//                  sigmoid/tanh in place and writes c_t = f c_{t-1} + i c~, tanh(c_t) and
//                  h_t = o tanh(c_t) (float32 uses a vectorisable exp; float64 libm's);
//   backward step: one loop computes dc_t, all four pre-activation gradients and dc_{t-1}
//                  from the saved activations, then dh_{t-1} = da W is one matmul.
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

// exp for float32 written so that gcc vectorises the loops that call it: range reduction
// x = n ln2 + r, then a degree-6 polynomial for e^r (the coefficients of Cephes' expf, about
// 1 ulp) and 2^n built from the exponent bits. Inputs are clamped to the range where
// the result is a normal float, which sigmoid and tanh below tolerate.
inline float exp_approx(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// float64 (tests, gradcheck) keeps libm's exact exp.
inline float exp_fast(float x) { return exp_approx(x); }
inline double exp_fast(double x) { return std::exp(x); }

template <typename scalar_t>
inline scalar_t sigmoid(scalar_t x) { return 1 / (1 + exp_fast(-x)); }

template <typename scalar_t>
inline scalar_t tanh_(scalar_t x) { return 1 - 2 / (exp_fast(2 * x) + 1); }

// One forward step after gates = U x_t + b + W h_{t-1}: activates the gates in place and
// writes c_t, tanh(c_t) and h_t, in a single pass.
template <typename scalar_t>
void forward_step(scalar_t* __restrict__ gates, const scalar_t* __restrict__ c_prev,
                  scalar_t* __restrict__ c, scalar_t* __restrict__ tanh_c,
                  scalar_t* __restrict__ h, int64_t B, int64_t H) {
  for (int64_t b = 0; b < B; ++b) {
    scalar_t* i = gates + b * 4 * H;
    scalar_t* f = i + H;
    scalar_t* g = i + 2 * H;
    scalar_t* o = i + 3 * H;
    const scalar_t* cp = c_prev + b * H;
    scalar_t* cb = c + b * H;
    scalar_t* tc = tanh_c + b * H;
    scalar_t* hb = h + b * H;
    for (int64_t j = 0; j < H; ++j) {
      const scalar_t iv = sigmoid(i[j]), fv = sigmoid(f[j]), gv = tanh_(g[j]), ov = sigmoid(o[j]);
      const scalar_t cv = fv * cp[j] + iv * gv;
      const scalar_t tv = tanh_(cv);
      i[j] = iv;
      f[j] = fv;
      g[j] = gv;
      o[j] = ov;
      cb[j] = cv;
      tc[j] = tv;
      hb[j] = ov * tv;
    }
  }
}

// dc (in: dL/dc_t from later steps; out: dL/dc_{t-1}); da: dL/d(pre-activations) of step t.
template <typename scalar_t>
void backward_step(const scalar_t* __restrict__ gates, const scalar_t* __restrict__ c_prev,
                   const scalar_t* __restrict__ tanh_c, const scalar_t* __restrict__ dh,
                   scalar_t* __restrict__ dc, scalar_t* __restrict__ da, int64_t B, int64_t H) {
  for (int64_t b = 0; b < B; ++b) {
    const scalar_t* i = gates + b * 4 * H;
    const scalar_t* f = i + H;
    const scalar_t* g = i + 2 * H;
    const scalar_t* o = i + 3 * H;
    const scalar_t* cp = c_prev + b * H;
    const scalar_t* tc = tanh_c + b * H;
    const scalar_t* dhb = dh + b * H;
    scalar_t* dcb = dc + b * H;
    scalar_t* da_i = da + b * 4 * H;
    scalar_t* da_f = da_i + H;
    scalar_t* da_g = da_i + 2 * H;
    scalar_t* da_o = da_i + 3 * H;
    for (int64_t j = 0; j < H; ++j) {
      const scalar_t d_c = dcb[j] + dhb[j] * o[j] * (1 - tc[j] * tc[j]);
      da_i[j] = d_c * g[j] * i[j] * (1 - i[j]);
      da_f[j] = d_c * cp[j] * f[j] * (1 - f[j]);
      da_g[j] = d_c * i[j] * (1 - g[j] * g[j]);
      da_o[j] = dhb[j] * tc[j] * o[j] * (1 - o[j]);
      dcb[j] = d_c * f[j];
    }
  }
}

void check_inputs(const at::Tensor& x, const at::Tensor& w_ih, const at::Tensor& w_hh,
                  const at::Tensor& bias) {
  TORCH_CHECK(x.device().is_cpu(), "lstm_ext handles CPU tensors only");
  TORCH_CHECK(x.dim() == 3 && x.is_contiguous(), "x must be a contiguous (T, B, D) tensor");
  TORCH_CHECK(w_ih.is_contiguous() && w_hh.is_contiguous() && bias.is_contiguous(),
              "weights must be contiguous");
  TORCH_CHECK(w_hh.size(0) == 4 * w_hh.size(1), "weight_hh must be (4H, H)");
}

}  // namespace

// x: (T, B, D) time-major. Returns {h_T, gates (T,B,4H), cs (T+1,B,H), tanh_cs (T,B,H), hs (T+1,B,H)}.
std::vector<at::Tensor> lstm_forward(const at::Tensor& x, const at::Tensor& w_ih,
                                     const at::Tensor& w_hh, const at::Tensor& bias) {
  check_inputs(x, w_ih, w_hh, bias);
  const int64_t T = x.size(0), B = x.size(1), D = x.size(2), H = w_hh.size(1);
  at::Tensor gates = at::addmm(bias, x.reshape({T * B, D}), w_ih.t()).view({T, B, 4 * H});
  at::Tensor cs = at::zeros({T + 1, B, H}, x.options());
  at::Tensor hs = at::zeros({T + 1, B, H}, x.options());
  at::Tensor tanh_cs = at::empty({T, B, H}, x.options());
  const at::Tensor w_hh_t = w_hh.t();
  for (int64_t t = 0; t < T; ++t) {
    at::Tensor g = gates.select(0, t);
    g.addmm_(hs.select(0, t), w_hh_t);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstm_forward_step", [&] {
      forward_step<scalar_t>(g.data_ptr<scalar_t>(), cs.select(0, t).data_ptr<scalar_t>(),
                             cs.select(0, t + 1).data_ptr<scalar_t>(),
                             tanh_cs.select(0, t).data_ptr<scalar_t>(),
                             hs.select(0, t + 1).data_ptr<scalar_t>(), B, H);
    });
  }
  return {hs.select(0, T).clone(), gates, cs, tanh_cs, hs};
}

// Returns {dx (T,B,D) or undefined, dW_ih, dW_hh, db}.
std::vector<at::Tensor> lstm_backward(const at::Tensor& grad_h, const at::Tensor& x,
                                      const at::Tensor& w_ih, const at::Tensor& w_hh,
                                      const at::Tensor& gates, const at::Tensor& cs,
                                      const at::Tensor& tanh_cs, const at::Tensor& hs,
                                      bool need_grad_x) {
  const int64_t T = x.size(0), B = x.size(1), D = x.size(2), H = w_hh.size(1);
  at::Tensor da = at::empty_like(gates);
  at::Tensor dh = grad_h.contiguous().clone();
  at::Tensor dc = at::zeros_like(dh);
  for (int64_t t = T - 1; t >= 0; --t) {
    at::Tensor a = da.select(0, t);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstm_backward_step", [&] {
      backward_step<scalar_t>(gates.select(0, t).data_ptr<scalar_t>(),
                              cs.select(0, t).data_ptr<scalar_t>(),
                              tanh_cs.select(0, t).data_ptr<scalar_t>(), dh.data_ptr<scalar_t>(),
                              dc.data_ptr<scalar_t>(), a.data_ptr<scalar_t>(), B, H);
    });
    if (t > 0) at::mm_out(dh, a, w_hh);
  }
  // Weight gradients summed over all steps: one large matmul each instead of T small ones.
  const at::Tensor da2 = da.view({T * B, 4 * H});
  at::Tensor grad_w_hh = at::mm(da2.t(), hs.narrow(0, 0, T).reshape({T * B, H}));
  at::Tensor grad_w_ih = at::mm(da2.t(), x.reshape({T * B, D}));
  at::Tensor grad_b = da2.sum(0);
  at::Tensor grad_x;
  if (need_grad_x) grad_x = at::mm(da2, w_ih).view({T, B, D});
  return {grad_x, grad_w_ih, grad_w_hh, grad_b};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &lstm_forward, "LSTM sequence forward (CPU)");
  m.def("backward", &lstm_backward, "LSTM sequence backward (CPU)");
}
