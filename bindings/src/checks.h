/* Argument checks shared by the CPU and CUDA implementations (internal). */
#ifndef SAVA_CHECKS_H
#define SAVA_CHECKS_H

#include "sava/sava.h"

/* Largest element count any one tensor may have: keeps every size product far from overflow. */
#define SAVA_MAX_ELEMENTS ((int64_t)1 << 40)

static inline int sava_positive_product(int64_t a, int64_t b, int64_t c, int64_t d, int64_t *out) {
    if (a <= 0 || b <= 0 || c <= 0 || d <= 0) return 0;
    int64_t n = a;
    const int64_t rest[3] = {b, c, d};
    for (int i = 0; i < 3; ++i) {
        if (n > SAVA_MAX_ELEMENTS / rest[i]) return 0;
        n *= rest[i];
    }
    *out = n;
    return 1;
}

/* The checks of an apply call; `frames` is read on the host. */
static inline sava_status sava_check_apply(const void *video, const void *out, int64_t T, int64_t C, int64_t H,
                                           int64_t W, const int64_t *frames_host, int64_t k, const void *flow,
                                           int64_t flow_count, const void *noise, int64_t noise_count,
                                           int64_t noise_h, int64_t noise_w) {
    int64_t total;
    if (!video || !out || (k > 0 && !frames_host)) return SAVA_ERROR_NULL_POINTER;
    if (!sava_positive_product(T, C, H, W, &total)) return SAVA_ERROR_INVALID_ARGUMENT;
    if (k < 0 || k > T) return SAVA_ERROR_INVALID_ARGUMENT;
    if (flow && (H < 2 || W < 2)) return SAVA_ERROR_INVALID_ARGUMENT;
    if (noise && !((noise_h == H && noise_w == W) || (noise_h == 1 && noise_w == 1))) return SAVA_ERROR_SHAPE_MISMATCH;
    /* The buffers must hold exactly what k, C, H, W and the noise size say (total / T * k cannot overflow). */
    if (flow_count != (flow ? k * 2 * H * W : 0)) return SAVA_ERROR_SHAPE_MISMATCH;
    if (noise_count != (noise ? k * C * noise_h * noise_w : 0)) return SAVA_ERROR_SHAPE_MISMATCH;
    for (int64_t i = 0; i < k; ++i) {
        if (frames_host[i] < 0 || frames_host[i] >= T) return SAVA_ERROR_INVALID_ARGUMENT;
        for (int64_t j = 0; j < i; ++j)
            if (frames_host[j] == frames_host[i]) return SAVA_ERROR_INVALID_ARGUMENT;
    }
    return SAVA_OK;
}

#endif
