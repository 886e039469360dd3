/* The perturbation on the CPU: bilinear warp (border clamped), noise, clamps. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "checks.h"

static float clamp01(float v) { return v < 0.f ? 0.f : (v > 1.f ? 1.f : v); }

/* One frame: dst (C x H x W) = clamp(clamp(warp(src, flow)) + noise). */
static void perturb_frame(const float *src, float *dst, int64_t C, int64_t H, int64_t W, const float *flow,
                          const float *noise, int64_t noise_hw) {
    const int64_t plane = H * W;
    for (int64_t h = 0; h < H; ++h) {
        for (int64_t w = 0; w < W; ++w) {
            const int64_t p = h * W + w;
            int64_t y0 = 0, x0 = 0;
            float wy = 0.f, wx = 0.f;
            if (flow) {
                /* fmaxf/fminf return the number when the other operand is NaN: never an undefined conversion
                 * below (sava_apply_cpu refuses non-finite flows before it gets here anyway). */
                const float y = fminf(fmaxf((float)h + flow[p], 0.f), (float)(H - 1));
                const float x = fminf(fmaxf((float)w + flow[plane + p], 0.f), (float)(W - 1));
                /* The cell that contains the point, its corner kept inside the frame. */
                y0 = (int64_t)floorf(y);
                x0 = (int64_t)floorf(x);
                if (y0 > H - 2) y0 = H - 2;
                if (x0 > W - 2) x0 = W - 2;
                wy = y - (float)y0;
                wx = x - (float)x0;
            }
            for (int64_t c = 0; c < C; ++c) {
                const float *s = src + c * plane;
                float v;
                if (flow) {
                    const int64_t q = y0 * W + x0;
                    v = (1.f - wy) * ((1.f - wx) * s[q] + wx * s[q + 1]) + wy * ((1.f - wx) * s[q + W] + wx * s[q + W + 1]);
                    v = clamp01(v);
                } else {
                    v = s[p];
                }
                if (noise) v = clamp01(v + noise[c * noise_hw + (noise_hw == 1 ? 0 : p)]);
                dst[c * plane + p] = v;
            }
        }
    }
}

static int all_finite(const float *values, int64_t count) {
    for (int64_t i = 0; i < count; ++i)
        if (!isfinite(values[i])) return 0;
    return 1;
}

sava_status sava_apply_cpu(const float *video, float *out, int64_t T, int64_t C, int64_t H, int64_t W,
                           const int64_t *frames, int64_t k, const float *flow, int64_t flow_count, const float *noise,
                           int64_t noise_count, int64_t noise_h, int64_t noise_w) {
    sava_status status = sava_check_apply(video, out, T, C, H, W, frames, k, flow, flow_count, noise, noise_count,
                                          noise_h, noise_w);
    if (status != SAVA_OK) return status;
    if ((flow && !all_finite(flow, flow_count)) || (noise && !all_finite(noise, noise_count)))
        return SAVA_ERROR_NON_FINITE;
    const int64_t frame_size = C * H * W;
    if (out != video) memmove(out, video, (size_t)(T * frame_size) * sizeof(float));
    /* In place, a frame's warp must read its clean pixels: keep a copy of the frame being rewritten. */
    float *clean = (float *)malloc((size_t)frame_size * sizeof(float));
    if (!clean) return SAVA_ERROR_OUT_OF_MEMORY;
    const int64_t noise_hw = noise_h * noise_w;
    for (int64_t i = 0; i < k; ++i) {
        const int64_t t = frames[i];
        memcpy(clean, video + t * frame_size, (size_t)frame_size * sizeof(float));
        perturb_frame(clean, out + t * frame_size, C, H, W, flow ? flow + i * 2 * H * W : NULL,
                      noise ? noise + i * C * noise_hw : NULL, noise_hw);
    }
    free(clean);
    return SAVA_OK;
}
