/* Per-frame SSIM on the CPU: five statistics blurred by a separable 11-tap
 * Gaussian over valid windows, then the SSIM map averaged. */
#include <math.h>
#include <stdlib.h>

#include "checks.h"
#include "ssim_window.h"

sava_status sava_ssim_cpu(const float *x, const float *y, int64_t n, int64_t C, int64_t H, int64_t W, float *out) {
    int64_t total;
    if (!x || !y || !out) return SAVA_ERROR_NULL_POINTER;
    if (!sava_positive_product(n, C, H, W, &total)) return SAVA_ERROR_INVALID_ARGUMENT;
    if (H < SAVA_SSIM_WINDOW || W < SAVA_SSIM_WINDOW) return SAVA_ERROR_INVALID_ARGUMENT;
    float taps[SAVA_SSIM_WINDOW];
    sava_ssim_taps(taps);
    const int64_t oh = H - SAVA_SSIM_WINDOW + 1, ow = W - SAVA_SSIM_WINDOW + 1;
    /* Five horizontally blurred statistics of one channel: H x ow each. */
    float *rows = (float *)malloc((size_t)(5 * H * ow) * sizeof(float));
    if (!rows) return SAVA_ERROR_OUT_OF_MEMORY;
    for (int64_t f = 0; f < n; ++f) {
        double sum = 0.0;
        for (int64_t c = 0; c < C; ++c) {
            const float *a = x + (f * C + c) * H * W, *b = y + (f * C + c) * H * W;
            for (int64_t h = 0; h < H; ++h) {
                for (int64_t w = 0; w < ow; ++w) {
                    float s[5] = {0.f, 0.f, 0.f, 0.f, 0.f};
                    for (int i = 0; i < SAVA_SSIM_WINDOW; ++i) {
                        const float u = a[h * W + w + i], v = b[h * W + w + i], g = taps[i];
                        s[0] += g * u;
                        s[1] += g * v;
                        s[2] += g * u * u;
                        s[3] += g * v * v;
                        s[4] += g * u * v;
                    }
                    for (int j = 0; j < 5; ++j) rows[(j * H + h) * ow + w] = s[j];
                }
            }
            for (int64_t h = 0; h < oh; ++h) {
                for (int64_t w = 0; w < ow; ++w) {
                    float s[5] = {0.f, 0.f, 0.f, 0.f, 0.f};
                    for (int i = 0; i < SAVA_SSIM_WINDOW; ++i)
                        for (int j = 0; j < 5; ++j) s[j] += taps[i] * rows[(j * H + h + i) * ow + w];
                    sum += sava_ssim_value(s[0], s[1], s[2], s[3], s[4]);
                }
            }
        }
        out[f] = (float)(sum / (double)(C * oh * ow));
    }
    free(rows);
    return SAVA_OK;
}
