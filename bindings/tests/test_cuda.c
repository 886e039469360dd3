/* The CUDA backend against the CPU implementation on the same inputs. Exits 77
 * (ctest: skipped) where no GPU is present. */
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "sava/sava.h"

#define SKIPPED 77

static unsigned state = 7u;
static float uniform(void) {
    state = state * 1664525u + 1013904223u;
    return (float)((state >> 8) & 0xFFFFFF) / (float)0x1000000;
}

static float *to_device(const float *host, size_t n) {
    float *device = NULL;
    if (cudaMalloc((void **)&device, n * sizeof(float)) != cudaSuccess) return NULL;
    cudaMemcpy(device, host, n * sizeof(float), cudaMemcpyHostToDevice);
    return device;
}

int main(void) {
    if (!sava_has_cuda()) {
        printf("no CUDA device: skipped\n");
        return SKIPPED;
    }
    enum { T = 5, C = 3, H = 24, W = 27, K = 2 };
    const size_t video_n = T * C * H * W;
    float *video = malloc(video_n * sizeof(float)), *cpu = malloc(video_n * sizeof(float)),
          *gpu = malloc(video_n * sizeof(float)), flow[K * 2 * H * W], noise[K * C * H * W];
    for (size_t i = 0; i < video_n; ++i) video[i] = uniform();
    for (int i = 0; i < K * 2 * H * W; ++i) flow[i] = 6.f * (uniform() - 0.5f);
    for (int i = 0; i < K * C * H * W; ++i) noise[i] = 0.1f * (uniform() - 0.5f);
    const int64_t frames[K] = {3, 0};
    int failures = 0;
    if (sava_apply_cpu(video, cpu, T, C, H, W, frames, K, flow, K * 2 * H * W, noise, K * C * H * W, H, W) != SAVA_OK) ++failures;
    float *d_video = to_device(video, video_n), *d_flow = to_device(flow, K * 2 * H * W),
          *d_noise = to_device(noise, K * C * H * W), *d_out = to_device(video, video_n);
    const sava_status s = sava_apply_cuda(d_video, d_out, T, C, H, W, frames, K, d_flow, K * 2 * H * W, d_noise, K * C * H * W, H, W, NULL);
    if (s != SAVA_OK) { fprintf(stderr, "apply_cuda: %s\n", sava_status_string(s)); ++failures; }
    cudaMemcpy(gpu, d_out, video_n * sizeof(float), cudaMemcpyDeviceToHost);
    float worst = 0.f;
    for (size_t i = 0; i < video_n; ++i) worst = fmaxf(worst, fabsf(cpu[i] - gpu[i]));
    printf("apply: largest |CUDA - CPU| = %g\n", worst);
    if (!(worst < 1e-5f)) ++failures;
    /* in place */
    cudaMemcpy(d_out, video, video_n * sizeof(float), cudaMemcpyHostToDevice);
    sava_apply_cuda(d_out, d_out, T, C, H, W, frames, K, d_flow, K * 2 * H * W, d_noise, K * C * H * W, H, W, NULL);
    cudaMemcpy(gpu, d_out, video_n * sizeof(float), cudaMemcpyDeviceToHost);
    for (size_t i = 0; i < video_n; ++i)
        if (fabsf(cpu[i] - gpu[i]) > 1e-5f) { ++failures; fprintf(stderr, "in place differs at %zu\n", i); break; }
    float ssim_cpu[T], ssim_gpu[T], *d_ssim = NULL;
    cudaMalloc((void **)&d_ssim, T * sizeof(float));
    float *d_adv = to_device(cpu, video_n);
    sava_ssim_cpu(video, cpu, T, C, H, W, ssim_cpu);
    if (sava_ssim_cuda(d_video, d_adv, T, C, H, W, d_ssim, NULL) != SAVA_OK) ++failures;
    cudaMemcpy(ssim_gpu, d_ssim, T * sizeof(float), cudaMemcpyDeviceToHost);
    for (int t = 0; t < T; ++t) {
        printf("frame %d: SSIM CPU %.7f CUDA %.7f\n", t, ssim_cpu[t], ssim_gpu[t]);
        if (fabsf(ssim_cpu[t] - ssim_gpu[t]) > 1e-5f) ++failures;
    }
    const int64_t bad[1] = {T};
    if (sava_apply_cuda(d_video, d_out, T, C, H, W, bad, 1, NULL, 0, NULL, 0, 0, 0, NULL) != SAVA_ERROR_INVALID_ARGUMENT)
        ++failures;
    cudaFree(d_video); cudaFree(d_flow); cudaFree(d_noise); cudaFree(d_out); cudaFree(d_ssim); cudaFree(d_adv);
    free(video); free(cpu); free(gpu);
    printf(failures ? "FAILED\n" : "all checks passed\n");
    return failures ? 1 : 0;
}
