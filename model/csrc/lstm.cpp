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
// Mixed precision (``mixed``, what autocast to bf16 asks for): the same steps with bf16
// matmul operands (fp32 accumulation inside the matmul) while c, the activations, the
// elementwise arithmetic and the returned gradients stay float32.
// The float32 products go through ATen's BLAS (MKL on x86 wheels), or through oneDNN's
// matmul where model/lstm_ext.py enables it (non-Intel x86 CPUs; see namespace onednn).
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <type_traits>
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

// Mixed precision (bf16 under autocast): the matrix products take bfloat16 operands, so
// h_t and the pre-activation gradients are *stored* as bf16 for them, while every
// elementwise computation, c_t and the gate activations stay in float32. These helpers
// convert with plain integer arithmetic so that gcc still vectorises the fused loops
// (c10::BFloat16's own conversion branches per element).
inline float load(float v) { return v; }
inline double load(double v) { return v; }
inline float load(at::BFloat16 v) {
  const uint32_t bits = static_cast<uint32_t>(v.x) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}
inline void store(float& dst, float v) { dst = v; }
inline void store(double& dst, double v) { dst = v; }
inline void store(at::BFloat16& dst, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  // Round to nearest even; a NaN must stay a NaN (the rounding carry could make it -0).
  const uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
  dst.x = v != v ? static_cast<uint16_t>(0x7FC0) : static_cast<uint16_t>(rounded);
}

// One forward step. gates holds U x_t + b (+ W h_{t-1} already, unless kAddProd: then the
// recurrent product comes separately in `prod`, computed in bf16, and is added here in
// float32). Activates the gates in place and writes c_t, tanh(c_t) and h_t (as mm_t, the
// dtype of the next step's matmul), in a single pass.
template <typename scalar_t, typename mm_t, bool kAddProd>
void forward_step(scalar_t* __restrict__ gates, const mm_t* __restrict__ prod,
                  const scalar_t* __restrict__ c_prev, scalar_t* __restrict__ c,
                  scalar_t* __restrict__ tanh_c, mm_t* __restrict__ h, int64_t b0, int64_t b1,
                  int64_t H) {
  for (int64_t b = b0; b < b1; ++b) {
    scalar_t* i = gates + b * 4 * H;
    scalar_t* f = i + H;
    scalar_t* g = i + 2 * H;
    scalar_t* o = i + 3 * H;
    const mm_t* p = kAddProd ? prod + b * 4 * H : nullptr;
    const scalar_t* cp = c_prev + b * H;
    scalar_t* cb = c + b * H;
    scalar_t* tc = tanh_c + b * H;
    mm_t* hb = h + b * H;
    for (int64_t j = 0; j < H; ++j) {
      scalar_t ai = i[j], af = f[j], ag = g[j], ao = o[j];
      if constexpr (kAddProd) {
        ai += load(p[j]);
        af += load(p[H + j]);
        ag += load(p[2 * H + j]);
        ao += load(p[3 * H + j]);
      }
      const scalar_t iv = sigmoid(ai), fv = sigmoid(af), gv = tanh_(ag), ov = sigmoid(ao);
      const scalar_t cv = fv * cp[j] + iv * gv;
      const scalar_t tv = tanh_(cv);
      i[j] = iv;
      f[j] = fv;
      g[j] = gv;
      o[j] = ov;
      cb[j] = cv;
      tc[j] = tv;
      store(hb[j], ov * tv);
    }
  }
}

// dc (in: dL/dc_t from later steps; out: dL/dc_{t-1}); da: dL/d(pre-activations) of step t,
// stored as mm_t for the matmuls that consume it. dh is float32 at the last step (the
// incoming gradient) and the bf16 product da W afterwards in mixed precision.
template <typename scalar_t, typename dh_t, typename mm_t>
void backward_step(const scalar_t* __restrict__ gates, const scalar_t* __restrict__ c_prev,
                   const scalar_t* __restrict__ tanh_c, const dh_t* __restrict__ dh,
                   scalar_t* __restrict__ dc, mm_t* __restrict__ da, int64_t b0, int64_t b1,
                   int64_t H) {
  for (int64_t b = b0; b < b1; ++b) {
    const scalar_t* i = gates + b * 4 * H;
    const scalar_t* f = i + H;
    const scalar_t* g = i + 2 * H;
    const scalar_t* o = i + 3 * H;
    const scalar_t* cp = c_prev + b * H;
    const scalar_t* tc = tanh_c + b * H;
    const dh_t* dhb = dh + b * H;
    scalar_t* dcb = dc + b * H;
    mm_t* da_i = da + b * 4 * H;
    mm_t* da_f = da_i + H;
    mm_t* da_g = da_i + 2 * H;
    mm_t* da_o = da_i + 3 * H;
    for (int64_t j = 0; j < H; ++j) {
      const scalar_t d_h = load(dhb[j]);
      const scalar_t d_c = dcb[j] + d_h * o[j] * (1 - tc[j] * tc[j]);
      store(da_i[j], d_c * g[j] * i[j] * (1 - i[j]));
      store(da_f[j], d_c * cp[j] * f[j] * (1 - f[j]));
      store(da_g[j], d_c * i[j] * (1 - g[j] * g[j]));
      store(da_o[j], d_h * tc[j] * o[j] * (1 - o[j]));
      dcb[j] = d_c * f[j];
    }
  }
}

// The fused loops split over batch rows across torch's intra-op threads: every element's
// arithmetic is the same whichever thread computes it, so results do not depend on the
// thread count. A task gets at least min_parallel_elems elements (rows x H): below that, waking a
// second thread costs more than the loop (small shapes stay on one thread).
std::atomic<int64_t> min_parallel_elems{4096};

template <typename F>
void over_rows(int64_t B, int64_t H, const F& f) {
  const int64_t min_elems = min_parallel_elems.load();
  if (min_elems <= 0 || B * H < 2 * min_elems || at::get_num_threads() < 2) {
    f(0, B);
    return;
  }
  at::parallel_for(0, B, (min_elems + H - 1) / H, f);
}

// MKL's packed-GEMM API, for the float32 recurrent product: an ordinary sgemm re-packs its
// weight operand on every call (28 times per sequence here), while nn.LSTM's oneDNN
// kernels pack W once. Looked up at run time in the libraries torch has loaded (x86 wheels
// link MKL statically and export these); where absent, the ordinary at:: calls run.
// Off unless enabled (set_packed_gemm / $LSTM_SEARCH_PACKED_GEMM) until measured faster.
namespace mkl {
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112, kPacked = 151, kBMatrix = 162;
using GetSize = size_t (*)(int identifier, int m, int n, int k);
using Pack = void (*)(int layout, int identifier, int trans, int m, int n, int k, float alpha,
                      const float* src, int ld, float* dest);
using Compute = void (*)(int layout, int transa, int transb, int m, int n, int k, const float* a,
                         int lda, const float* b, int ldb, float beta, float* c, int ldc);
struct Api {
  GetSize get_size = nullptr;
  Pack pack = nullptr;
  Compute compute = nullptr;
  bool ok() const { return get_size && pack && compute; }
};

const Api& api() {
  static const Api found = [] {
    Api a;
    void* lib = dlopen("libtorch_cpu.so", RTLD_NOW | RTLD_NOLOAD);
    void* where = lib ? lib : RTLD_DEFAULT;
    a.get_size = reinterpret_cast<GetSize>(dlsym(where, "cblas_sgemm_pack_get_size"));
    a.pack = reinterpret_cast<Pack>(dlsym(where, "cblas_sgemm_pack"));
    a.compute = reinterpret_cast<Compute>(dlsym(where, "cblas_sgemm_compute"));
    return a;
  }();
  return found;
}

std::atomic<bool> enabled{false};

// The B operand (k x n, or its transpose) of m-row products packed once; a float tensor
// keeps the buffer alive and aligned.
at::Tensor pack_b(const at::Tensor& w, bool transpose, int64_t m, int64_t n, int64_t k) {
  const size_t bytes = api().get_size(kBMatrix, m, n, k);
  at::Tensor dest = at::empty({static_cast<int64_t>(bytes / sizeof(float)) + 1}, w.options());
  api().pack(kRowMajor, kBMatrix, transpose ? kTrans : kNoTrans, m, n, k, 1.0f,
             w.data_ptr<float>(), w.size(1), dest.data_ptr<float>());
  return dest;
}

// c (m x n, row-major, contiguous) = a (m x k, contiguous) * packed + beta * c.
void packed_mm(const at::Tensor& a, const at::Tensor& packed, at::Tensor& c, float beta) {
  const int64_t m = c.size(0), n = c.size(1), k = a.size(1);
  api().compute(kRowMajor, kNoTrans, kPacked, m, n, k, a.data_ptr<float>(), k,
                packed.data_ptr<float>(), 0, beta, c.data_ptr<float>(), n);
}
}  // namespace mkl

// oneDNN's float32 matmul, reached through the dispatcher as mkldnn::_linear_pointwise
// (x W^T, the op torch.compile emits for a linear): on CPUs where MKL's sgemm keeps to its
// AVX2 kernels (it reserves AVX-512 for Intel's), oneDNN's AVX-512 kernels run these
// products about twice as fast (measured on an AMD EPYC: 205 vs 107 GFLOP/s at
// 128x128x512, 1 thread; nn.LSTM's own CPU kernel is oneDNN's). Off unless enabled
// (set_onednn_gemm, chosen in model/lstm_ext.py); absent from builds without oneDNN.
namespace onednn {
const c10::OperatorHandle* find(const char* name) {
  const std::optional<c10::OperatorHandle> handle = c10::Dispatcher::singleton().findSchema({name, ""});
  return handle ? new c10::OperatorHandle(*handle) : nullptr;  // lives as long as the process
}

const c10::OperatorHandle* op() {
  static const c10::OperatorHandle* found = find("mkldnn::_linear_pointwise");
  return found;
}

std::atomic<bool> enabled{false};

// a (m x k) times w (n x k) transposed, plus bias (n) if defined: a new (m x n) tensor.
at::Tensor linear(const at::Tensor& a, const at::Tensor& w, const at::Tensor& bias = {}) {
  torch::jit::Stack stack;
  stack.reserve(6);
  stack.emplace_back(a);
  stack.emplace_back(w);
  stack.emplace_back(bias.defined() ? c10::IValue(bias) : c10::IValue());
  stack.emplace_back(std::string("none"));
  stack.emplace_back(c10::List<std::optional<at::Scalar>>());
  stack.emplace_back(std::string(""));
  op()->callBoxed(&stack);
  return stack[0].toTensor();
}
}  // namespace onednn

template <typename scalar_t, typename mm_t>
bool use_packed() {
  return std::is_same_v<scalar_t, float> && std::is_same_v<mm_t, float> && mkl::enabled.load() &&
         mkl::api().ok();
}

// oneDNN refuses empty products (T, B, D or H of 0), which ATen's BLAS path handles.
template <typename scalar_t, typename mm_t>
bool use_onednn(const at::Tensor& x, int64_t H) {
  return std::is_same_v<scalar_t, float> && std::is_same_v<mm_t, float> &&
         onednn::enabled.load() && onednn::op() != nullptr && x.numel() > 0 && H > 0;
}

void check_inputs(const at::Tensor& x, const at::Tensor& w_ih, const at::Tensor& w_hh,
                  const at::Tensor& bias) {
  TORCH_CHECK(x.device().is_cpu(), "lstm_ext handles CPU tensors only");
  TORCH_CHECK(x.dim() == 3 && x.is_contiguous(), "x must be a contiguous (T, B, D) tensor");
  TORCH_CHECK(w_ih.is_contiguous() && w_hh.is_contiguous() && bias.is_contiguous(),
              "weights must be contiguous");
  TORCH_CHECK(w_hh.size(0) == 4 * w_hh.size(1), "weight_hh must be (4H, H)");
}

// scalar_t: the dtype of x, the weights, c and the activations; mm_t: that of the matmul
// operands (scalar_t itself, or bf16 in mixed precision).
template <typename scalar_t, typename mm_t>
std::vector<at::Tensor> forward_impl(const at::Tensor& x, const at::Tensor& w_ih,
                                     const at::Tensor& w_hh, const at::Tensor& bias) {
  constexpr bool kMixed = !std::is_same_v<scalar_t, mm_t>;
  const int64_t T = x.size(0), B = x.size(1), D = x.size(2), H = w_hh.size(1);
  const auto mm_type = c10::CppTypeToScalarType<mm_t>::value;
  // The matmul operands, cast once per sequence (no copies when mm_t == scalar_t).
  const at::Tensor x_m = x.to(mm_type), w_ih_m = w_ih.to(mm_type), w_hh_m = w_hh.to(mm_type);
  // U x_t + b for all steps in one product; in mixed precision the bf16 product is
  // widened to float32 by the bias addition (type promotion), so gates are float32.
  const bool dnnl = use_onednn<scalar_t, mm_t>(x, H);
  at::Tensor gates = kMixed ? at::add(at::mm(x_m.reshape({T * B, D}), w_ih_m.t()), bias)
                     : dnnl ? onednn::linear(x.reshape({T * B, D}), w_ih, bias)
                            : at::addmm(bias, x.reshape({T * B, D}), w_ih.t());
  gates = gates.view({T, B, 4 * H});
  // Every step writes its slice: only c_0 = h_0 = 0 needs zeroing.
  at::Tensor cs = at::empty({T + 1, B, H}, x.options());
  at::Tensor hs = at::empty({T + 1, B, H}, x.options().dtype(mm_type));
  cs.select(0, 0).zero_();
  hs.select(0, 0).zero_();
  at::Tensor tanh_cs = at::empty({T, B, H}, x.options());
  at::Tensor prod = kMixed ? at::empty({B, 4 * H}, hs.options()) : at::Tensor();
  const at::Tensor w_hh_t = w_hh_m.t();
  const bool packed = !dnnl && use_packed<scalar_t, mm_t>();
  const at::Tensor w_packed = packed ? mkl::pack_b(w_hh, true, B, 4 * H, H) : at::Tensor();
  // The fused loops take raw per-step pointers into the contiguous buffers: a select per
  // buffer and step is a tensor allocation each, which counts at small shapes. Only the
  // operands of the products are views.
  scalar_t* const gates0 = gates.data_ptr<scalar_t>();
  scalar_t* const cs0 = cs.data_ptr<scalar_t>();
  scalar_t* const tanh0 = tanh_cs.data_ptr<scalar_t>();
  mm_t* const hs0 = hs.data_ptr<mm_t>();
  const int64_t step_g = B * 4 * H, step_h = B * H;
  for (int64_t t = 0; t < T; ++t) {
    const at::Tensor h_prev = hs.select(0, t);
    // Where W h_{t-1} comes as a separate product (bf16, or oneDNN's new tensor), the
    // fused loop adds it; otherwise it was accumulated into the gates in place.
    if constexpr (kMixed) {
      at::mm_out(prod, h_prev, w_hh_t);
    } else if (dnnl) {
      prod = onednn::linear(h_prev, w_hh);  // (B, 4H)
    } else if (packed) {
      at::Tensor g = gates.select(0, t);
      mkl::packed_mm(h_prev, w_packed, g, 1.0f);
    } else {
      gates.select(0, t).addmm_(h_prev, w_hh_t);
    }
    scalar_t* gp = gates0 + t * step_g;
    const scalar_t* cp = cs0 + t * step_h;
    scalar_t* cn = cs0 + (t + 1) * step_h;
    scalar_t* tc = tanh0 + t * step_h;
    mm_t* hn = hs0 + (t + 1) * step_h;
    const mm_t* pp = prod.defined() ? prod.data_ptr<mm_t>() : nullptr;
    over_rows(B, H, [&](int64_t b0, int64_t b1) {
      if (pp != nullptr) {
        forward_step<scalar_t, mm_t, true>(gp, pp, cp, cn, tc, hn, b0, b1, H);
      } else {
        forward_step<scalar_t, mm_t, false>(gp, nullptr, cp, cn, tc, hn, b0, b1, H);
      }
    });
  }
  // h_T in full precision: hs holds it rounded to bf16 in mixed precision.
  at::Tensor h_T = !kMixed ? hs.select(0, T).clone()
                   : T == 0 ? at::zeros({B, H}, x.options())
                            : gates.select(0, T - 1).narrow(1, 3 * H, H) * tanh_cs.select(0, T - 1);
  return {h_T, gates, cs, tanh_cs, hs, x_m, w_ih_m, w_hh_m};
}

template <typename scalar_t, typename mm_t>
std::vector<at::Tensor> backward_impl(const at::Tensor& grad_h, const at::Tensor& x_m,
                                      const at::Tensor& w_ih_m, const at::Tensor& w_hh_m,
                                      const at::Tensor& gates, const at::Tensor& cs,
                                      const at::Tensor& tanh_cs, const at::Tensor& hs,
                                      bool need_grad_x) {
  const int64_t T = x_m.size(0), B = x_m.size(1), D = x_m.size(2), H = w_hh_m.size(1);
  const auto scalar_type = c10::CppTypeToScalarType<scalar_t>::value;
  at::Tensor da = at::empty(gates.sizes(), hs.options());  // mm_t: it feeds matmuls only
  const at::Tensor dh_T = grad_h.to(scalar_type).contiguous();
  at::Tensor dh = at::empty({B, H}, hs.options());  // da W of the step after
  at::Tensor dc = at::zeros({B, H}, cs.options());
  const bool dnnl = use_onednn<scalar_t, mm_t>(x_m, H);
  const bool packed = !dnnl && use_packed<scalar_t, mm_t>();
  const at::Tensor w_packed = packed && T > 1 ? mkl::pack_b(w_hh_m, false, B, H, 4 * H) : at::Tensor();
  // oneDNN computes a W^T: give it W_hh^T (H, 4H) once, so that a W_hh is one call per step.
  const at::Tensor w_hh_tc = dnnl && T > 1 ? w_hh_m.t().contiguous() : at::Tensor();
  // Raw per-step pointers for the fused loop, as in the forward; views only for products.
  const scalar_t* const gates0 = gates.data_ptr<scalar_t>();
  const scalar_t* const cs0 = cs.data_ptr<scalar_t>();
  const scalar_t* const tanh0 = tanh_cs.data_ptr<scalar_t>();
  mm_t* const da0 = da.data_ptr<mm_t>();
  scalar_t* const dcp = dc.data_ptr<scalar_t>();
  const int64_t step_g = B * 4 * H, step_h = B * H;
  for (int64_t t = T - 1; t >= 0; --t) {
    const scalar_t* g = gates0 + t * step_g;
    const scalar_t* cp = cs0 + t * step_h;
    const scalar_t* tc = tanh0 + t * step_h;
    mm_t* ap = da0 + t * step_g;
    const scalar_t* dh_last = t == T - 1 ? dh_T.data_ptr<scalar_t>() : nullptr;
    const mm_t* dh_next = t == T - 1 ? nullptr : dh.data_ptr<mm_t>();
    over_rows(B, H, [&](int64_t b0, int64_t b1) {
      if (dh_last != nullptr) {
        backward_step<scalar_t, scalar_t, mm_t>(g, cp, tc, dh_last, dcp, ap, b0, b1, H);
      } else {
        backward_step<scalar_t, mm_t, mm_t>(g, cp, tc, dh_next, dcp, ap, b0, b1, H);
      }
    });
    if (t > 0) {
      const at::Tensor a = da.select(0, t);
      if (dnnl) {
        dh = onednn::linear(a, w_hh_tc);  // (B, H)
      } else if (packed) {
        mkl::packed_mm(a, w_packed, dh, 0.0f);
      } else {
        at::mm_out(dh, a, w_hh_m);
      }
    }
  }
  // Weight gradients summed over all steps: one large matmul each instead of T small ones
  // (fp32 accumulation inside the bf16 matmuls), returned in the master weights' dtype.
  const at::Tensor da2 = da.view({T * B, 4 * H});
  const at::Tensor hs2 = hs.narrow(0, 0, T).reshape({T * B, H}), x2 = x_m.reshape({T * B, D});
  at::Tensor grad_w_hh, grad_w_ih;
  if (dnnl) {
    // dW^T = hs^T da as oneDNN's a W^T with a = hs^T, W = da^T (strided views it reads as
    // they are; measured 2x the GFLOP/s of the da^T-first order), then one small transpose.
    grad_w_hh = onednn::linear(hs2.t(), da2.t()).t().contiguous();
    grad_w_ih = onednn::linear(x2.t(), da2.t()).t().contiguous();
  } else {
    grad_w_hh = at::mm(da2.t(), hs2).to(scalar_type);
    grad_w_ih = at::mm(da2.t(), x2).to(scalar_type);
  }
  at::Tensor grad_b = at::sum(da2, {0}, false, scalar_type);
  at::Tensor grad_x;
  if (need_grad_x) grad_x = at::mm(da2, w_ih_m).view({T, B, D}).to(scalar_type);
  return {grad_x, grad_w_ih, grad_w_hh, grad_b};
}

}  // namespace

// x: (T, B, D) time-major. mixed: bf16 matmuls, float32 everything else (x must be float32).
// Returns {h_T, gates (T,B,4H), cs (T+1,B,H), tanh_cs (T,B,H), hs (T+1,B,H), and the matmul
// operands x, w_ih, w_hh as the backward needs them (bf16 copies when mixed)}.
std::vector<at::Tensor> lstm_forward(const at::Tensor& x, const at::Tensor& w_ih,
                                     const at::Tensor& w_hh, const at::Tensor& bias, bool mixed) {
  check_inputs(x, w_ih, w_hh, bias);
  if (mixed) {
    TORCH_CHECK(x.scalar_type() == at::kFloat, "mixed precision needs float32 x and weights");
    return forward_impl<float, at::BFloat16>(x, w_ih, w_hh, bias);
  }
  return AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstm_forward", [&] {
    return forward_impl<scalar_t, scalar_t>(x, w_ih, w_hh, bias);
  });
}

// The saved tensors of lstm_forward; mixed precision is read off hs's dtype.
// Returns {dx (T,B,D) or undefined, dW_ih, dW_hh, db}.
std::vector<at::Tensor> lstm_backward(const at::Tensor& grad_h, const at::Tensor& x_m,
                                      const at::Tensor& w_ih_m, const at::Tensor& w_hh_m,
                                      const at::Tensor& gates, const at::Tensor& cs,
                                      const at::Tensor& tanh_cs, const at::Tensor& hs,
                                      bool need_grad_x) {
  if (hs.scalar_type() == at::kBFloat16) {
    return backward_impl<float, at::BFloat16>(grad_h, x_m, w_ih_m, w_hh_m, gates, cs, tanh_cs, hs,
                                              need_grad_x);
  }
  return AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "lstm_backward", [&] {
    return backward_impl<scalar_t, scalar_t>(grad_h, x_m, w_ih_m, w_hh_m, gates, cs, tanh_cs, hs,
                                             need_grad_x);
  });
}

// Returns whether the packed float32 recurrent products are now in use.
bool set_packed_gemm(bool enable) {
  mkl::enabled.store(enable);
  return enable && mkl::api().ok();
}

// Returns whether oneDNN's matmul now computes the float32 products (false where torch was
// built without oneDNN).
bool set_onednn_gemm(bool enable) {
  onednn::enabled.store(enable);
  return enable && onednn::op() != nullptr;
}

// Elements (batch rows x H) one thread's share of a fused loop must reach before the loop
// is split over threads; 0 keeps the loops on one thread. Returns the previous value.
int64_t set_min_parallel_elems(int64_t elems) { return min_parallel_elems.exchange(elems); }

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("set_min_parallel_elems", &set_min_parallel_elems,
        "elements per thread below which the fused loops stay on one thread (0: never split)");
  m.def("set_packed_gemm", &set_packed_gemm, "use MKL's packed GEMM for float32 W h products");
  m.def("set_onednn_gemm", &set_onednn_gemm, "use oneDNN's matmul for the float32 products");
  m.def("forward", &lstm_forward, "LSTM sequence forward (CPU)");
  m.def("backward", &lstm_backward, "LSTM sequence backward (CPU)");
}
