// Fused CPU kernels for the generator: bias + activation, and upfirdn2d (upsample, FIR filter,
// downsample in one pass). Built on demand by privaudit.image.ops; PyTorch code is the fallback.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>

// y = act(x + b[c]) * gain, clamped to [-clamp, clamp] when clamp >= 0. act: 0 linear, 1 lrelu, 2 relu.
torch::Tensor bias_act(torch::Tensor x, torch::Tensor b, int64_t act, double alpha, double gain, double clamp) {
  TORCH_CHECK(x.dim() >= 2 && x.scalar_type() == torch::kFloat32 && !x.is_cuda(), "bias_act: float32 CPU tensor [N, C, ...]");
  x = x.contiguous();
  const int64_t n = x.size(0), c = x.size(1), inner = x.numel() / std::max<int64_t>(n * c, 1);
  const bool has_bias = b.numel() > 0;
  auto bc = has_bias ? b.contiguous() : b;
  auto y = torch::empty_like(x);
  const float* xp = x.data_ptr<float>();
  const float* bp = has_bias ? bc.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  const float a = (float)alpha, g = (float)gain, cl = (float)clamp;
  at::parallel_for(0, n * c, 1, [&](int64_t begin, int64_t end) {
    for (int64_t nc = begin; nc < end; ++nc) {
      const float bias = has_bias ? bp[nc % c] : 0.f;
      for (int64_t i = 0; i < inner; ++i) {
        float v = xp[nc * inner + i] + bias;
        if (act == 1) v = v > 0.f ? v : v * a;
        else if (act == 2) v = v > 0.f ? v : 0.f;
        v *= g;
        if (cl >= 0.f) v = std::min(std::max(v, -cl), cl);
        yp[nc * inner + i] = v;
      }
    }
  });
  return y;
}

// Gradient of bias_act w.r.t. x given the forward output y (the activation's slope is read off y).
torch::Tensor bias_act_grad(torch::Tensor dy, torch::Tensor y, int64_t act, double alpha, double gain, double clamp) {
  dy = dy.contiguous();
  y = y.contiguous();
  auto dx = torch::empty_like(dy);
  const float* dyp = dy.data_ptr<float>();
  const float* yp = y.data_ptr<float>();
  float* dxp = dx.data_ptr<float>();
  const float a = (float)alpha, g = (float)gain, cl = (float)clamp;
  at::parallel_for(0, dy.numel(), 4096, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float v = yp[i];
      float slope = g;
      if (cl >= 0.f && std::fabs(v) >= cl) slope = 0.f;  // clamped: no gradient
      else if (act == 1) slope = v > 0.f ? g : g * a;
      else if (act == 2) slope = v > 0.f ? g : 0.f;
      dxp[i] = dyp[i] * slope;
    }
  });
  return dx;
}

// upfirdn2d: zero-insertion upsampling by (upx, upy), padding (negative crops), a 2-D FIR filter
// applied as a correlation (convolution unless flip_filter), then downsampling by (downx, downy).
torch::Tensor upfirdn2d(torch::Tensor x, torch::Tensor f, int64_t upx, int64_t upy, int64_t downx, int64_t downy,
                        int64_t padx0, int64_t padx1, int64_t pady0, int64_t pady1, bool flip_filter, double gain) {
  TORCH_CHECK(x.dim() == 4 && x.scalar_type() == torch::kFloat32 && !x.is_cuda(), "upfirdn2d: float32 CPU tensor [N, C, H, W]");
  TORCH_CHECK(f.dim() == 2, "upfirdn2d: 2-D filter");
  x = x.contiguous();
  auto fc = f.to(torch::kFloat32).contiguous();
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t fh = fc.size(0), fw = fc.size(1);
  const int64_t oh = (h * upy + pady0 + pady1 - fh + downy) / downy;
  const int64_t ow = (w * upx + padx0 + padx1 - fw + downx) / downx;
  TORCH_CHECK(oh >= 1 && ow >= 1, "upfirdn2d: empty output");
  auto y = torch::empty({n, c, oh, ow}, x.options());
  const float* xp = x.data_ptr<float>();
  const float* fp = fc.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const float g = (float)gain;
  at::parallel_for(0, n * c, 1, [&](int64_t begin, int64_t end) {
    for (int64_t nc = begin; nc < end; ++nc) {
      const float* xin = xp + nc * h * w;
      float* out = yp + nc * oh * ow;
      for (int64_t oy = 0; oy < oh; ++oy) {
        for (int64_t ox = 0; ox < ow; ++ox) {
          float acc = 0.f;
          for (int64_t ky = 0; ky < fh; ++ky) {
            const int64_t uy = oy * downy + ky - pady0;  // row in the upsampled image
            if (uy < 0 || uy >= h * upy || uy % upy != 0) continue;
            const int64_t iy = uy / upy;
            const int64_t fy = flip_filter ? ky : fh - 1 - ky;
            for (int64_t kx = 0; kx < fw; ++kx) {
              const int64_t ux = ox * downx + kx - padx0;
              if (ux < 0 || ux >= w * upx || ux % upx != 0) continue;
              const int64_t fx = flip_filter ? kx : fw - 1 - kx;
              acc += xin[iy * w + ux / upx] * fp[fy * fw + fx];
            }
          }
          out[oy * ow + ox] = acc * g;
        }
      }
    }
  });
  return y;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("bias_act", &bias_act, "bias + activation (CPU)");
  m.def("bias_act_grad", &bias_act_grad, "gradient of bias + activation (CPU)");
  m.def("upfirdn2d", &upfirdn2d, "upsample, FIR filter, downsample (CPU)");
}
