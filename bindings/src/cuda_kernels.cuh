/* The CUDA kernels of apply and SSIM. Self-contained (no includes), so the same
 * text compiles with nvcc into the library and with NVRTC through CuPy
 * (sava.native.cuda). The math is the CPU implementation's, per pixel. */
#ifndef SAVA_CUDA_KERNELS_CUH
#define SAVA_CUDA_KERNELS_CUH

#define SAVA_CUDA_WINDOW 11

__device__ __forceinline__ float sava_clamp01(float v) { return fminf(fmaxf(v, 0.f), 1.f); }

/* One thread per pixel of a selected frame: out[frames[i]] = clamp(clamp(warp(clean[i], flow[i])) + noise[i]).
 * `clean` holds the k selected frames (gathered before, so `out` may alias the video). */
extern "C" __global__ void sava_apply_kernel(const float *clean, float *out, const long long *frames, long long k,
                                             long long C, long long H, long long W, const float *flow,
                                             const float *noise, long long noise_hw) {
    const long long plane = H * W;
    const long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= k * plane) return;
    const long long i = index / plane, p = index % plane, h = p / W, w = p % W;
    const float *src = clean + i * C * plane;
    float *dst = out + frames[i] * C * plane;
    long long y0 = 0, x0 = 0;
    float wy = 0.f, wx = 0.f;
    if (flow) {
        const float *f = flow + i * 2 * plane;
        const float y = fminf(fmaxf((float)h + f[p], 0.f), (float)(H - 1));
        const float x = fminf(fmaxf((float)w + f[plane + p], 0.f), (float)(W - 1));
        y0 = (long long)floorf(y);
        x0 = (long long)floorf(x);
        if (y0 > H - 2) y0 = H - 2;
        if (x0 > W - 2) x0 = W - 2;
        wy = y - (float)y0;
        wx = x - (float)x0;
    }
    for (long long c = 0; c < C; ++c) {
        const float *s = src + c * plane;
        float v;
        if (flow) {
            const long long q = y0 * W + x0;
            v = sava_clamp01((1.f - wy) * ((1.f - wx) * s[q] + wx * s[q + 1]) +
                             wy * ((1.f - wx) * s[q + W] + wx * s[q + W + 1]));
        } else {
            v = s[p];
        }
        if (noise) v = sava_clamp01(v + noise[(i * C + c) * noise_hw + (noise_hw == 1 ? 0 : p)]);
        dst[c * plane + p] = v;
    }
}

/* One thread per valid window position of one channel of one frame; window sums in float,
 * the frame's total accumulated in double. `taps` are the 11 normalised Gaussian weights. */
extern "C" __global__ void sava_ssim_kernel(const float *x, const float *y, long long n, long long C, long long H,
                                            long long W, const float *taps, double *sums) {
    const long long oh = H - SAVA_CUDA_WINDOW + 1, ow = W - SAVA_CUDA_WINDOW + 1;
    const long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= n * C * oh * ow) return;
    const long long plane_index = index / (oh * ow), p = index % (oh * ow), h = p / ow, w = p % ow;
    const float *a = x + plane_index * H * W, *b = y + plane_index * H * W;
    float mx = 0.f, my = 0.f, xx = 0.f, yy = 0.f, xy = 0.f;
    for (int i = 0; i < SAVA_CUDA_WINDOW; ++i) {
        for (int j = 0; j < SAVA_CUDA_WINDOW; ++j) {
            const float g = taps[i] * taps[j], u = a[(h + i) * W + w + j], v = b[(h + i) * W + w + j];
            mx += g * u; my += g * v; xx += g * u * u; yy += g * v * v; xy += g * u * v;
        }
    }
    const float c1 = 0.01f * 0.01f, c2 = 0.03f * 0.03f;
    const float vx = xx - mx * mx, vy = yy - my * my, cov = xy - mx * my;
    const float value = ((2.f * mx * my + c1) * (2.f * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2));
    atomicAdd(&sums[plane_index / C], (double)value);
}

extern "C" __global__ void sava_ssim_finish_kernel(const double *sums, float *out, long long n, double count) {
    const long long f = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (f < n) out[f] = (float)(sums[f] / count);
}

#endif
