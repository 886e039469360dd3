/* The CUDA entry points of a build without CUDA. */
#include "sava/sava.h"

int sava_has_cuda(void) { return 0; }

sava_status sava_apply_cuda(const float *video, float *out, int64_t T, int64_t C, int64_t H, int64_t W,
                            const int64_t *frames, int64_t k, const float *flow, int64_t flow_count,
                            const float *noise, int64_t noise_count, int64_t noise_h, int64_t noise_w, void *stream) {
    (void)video; (void)out; (void)T; (void)C; (void)H; (void)W; (void)frames; (void)k; (void)flow; (void)noise;
    (void)flow_count; (void)noise_count; (void)noise_h; (void)noise_w; (void)stream;
    return SAVA_ERROR_NOT_BUILT;
}

sava_status sava_ssim_cuda(const float *x, const float *y, int64_t n, int64_t C, int64_t H, int64_t W, float *out,
                           void *stream) {
    (void)x; (void)y; (void)n; (void)C; (void)H; (void)W; (void)out; (void)stream;
    return SAVA_ERROR_NOT_BUILT;
}
