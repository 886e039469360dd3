/* The SSIM constants and window, shared by the CPU and CUDA code (internal). */
#ifndef SAVA_SSIM_WINDOW_H
#define SAVA_SSIM_WINDOW_H

#include <math.h>

#define SAVA_SSIM_WINDOW 11
#define SAVA_SSIM_SIGMA 1.5
#define SAVA_SSIM_C1 (0.01f * 0.01f)
#define SAVA_SSIM_C2 (0.03f * 0.03f)

#ifdef __CUDACC__
#define SAVA_HOST_DEVICE __host__ __device__
#else
#define SAVA_HOST_DEVICE
#endif

/* Normalised Gaussian taps, computed in double as the Python reference does. */
static inline void sava_ssim_taps(float taps[SAVA_SSIM_WINDOW]) {
    double raw[SAVA_SSIM_WINDOW], total = 0.0;
    for (int i = 0; i < SAVA_SSIM_WINDOW; ++i) {
        const double d = i - (SAVA_SSIM_WINDOW - 1) / 2.0;
        raw[i] = exp(-d * d / (2.0 * SAVA_SSIM_SIGMA * SAVA_SSIM_SIGMA));
        total += raw[i];
    }
    for (int i = 0; i < SAVA_SSIM_WINDOW; ++i) taps[i] = (float)(raw[i] / total);
}

/* SSIM at one window from its blurred statistics: means, second moments, cross moment. */
static inline SAVA_HOST_DEVICE float sava_ssim_value(float mx, float my, float xx, float yy, float xy) {
    const float vx = xx - mx * mx, vy = yy - my * my, cov = xy - mx * my;
    return ((2.f * mx * my + SAVA_SSIM_C1) * (2.f * cov + SAVA_SSIM_C2)) /
           ((mx * mx + my * my + SAVA_SSIM_C1) * (vx + vy + SAVA_SSIM_C2));
}

#endif
