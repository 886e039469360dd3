/* The CUDA entry points: argument checks on the host, scratch buffers on the
 * caller's stream, every CUDA call and every launch checked. */
#include <cuda_runtime.h>

#include "checks.h"
#include "cuda_kernels.cuh"
#include "ssim_window.h"

#define SAVA_CUDA_CHECK(call)                          \
    do {                                               \
        if ((call) != cudaSuccess) return SAVA_ERROR_CUDA; \
    } while (0)

static const int THREADS = 256;

extern "C" int sava_has_cuda(void) {
    int devices = 0;
    return cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0;
}

extern "C" sava_status sava_apply_cuda(const float *video, float *out, int64_t T, int64_t C, int64_t H, int64_t W,
                                       const int64_t *frames, int64_t k, const float *flow, int64_t flow_count,
                                       const float *noise, int64_t noise_count, int64_t noise_h, int64_t noise_w,
                                       void *stream_handle) {
    /* `frames` is a host array (k small integers), so it is checked here without a device round trip. */
    sava_status status = sava_check_apply(video, out, T, C, H, W, frames, k, flow, flow_count, noise, noise_count,
                                          noise_h, noise_w);
    if (status != SAVA_OK) return status;
    cudaStream_t stream = (cudaStream_t)stream_handle;
    const size_t frame_bytes = (size_t)(C * H * W) * sizeof(float);
    if (out != video) SAVA_CUDA_CHECK(cudaMemcpyAsync(out, video, (size_t)T * frame_bytes, cudaMemcpyDeviceToDevice, stream));
    if (k == 0) return SAVA_OK;
    float *clean = NULL;
    long long *device_frames = NULL;
    SAVA_CUDA_CHECK(cudaMallocAsync((void **)&clean, (size_t)k * frame_bytes, stream));
    if (cudaMallocAsync((void **)&device_frames, (size_t)k * sizeof(long long), stream) != cudaSuccess) {
        cudaFreeAsync(clean, stream);
        return SAVA_ERROR_CUDA;
    }
    cudaError_t error = cudaMemcpyAsync(device_frames, frames, (size_t)k * sizeof(long long), cudaMemcpyHostToDevice,
                                        stream);
    for (int64_t i = 0; i < k && error == cudaSuccess; ++i)
        error = cudaMemcpyAsync(clean + i * C * H * W, video + frames[i] * C * H * W, frame_bytes,
                                cudaMemcpyDeviceToDevice, stream);
    if (error == cudaSuccess) {
        const long long work = k * H * W;
        sava_apply_kernel<<<(unsigned)((work + THREADS - 1) / THREADS), THREADS, 0, stream>>>(
            clean, out, device_frames, k, C, H, W, flow, noise, noise ? noise_h * noise_w : 1);
        error = cudaGetLastError();
    }
    cudaFreeAsync(device_frames, stream);
    cudaFreeAsync(clean, stream);
    return error == cudaSuccess ? SAVA_OK : SAVA_ERROR_CUDA;
}

extern "C" sava_status sava_ssim_cuda(const float *x, const float *y, int64_t n, int64_t C, int64_t H, int64_t W,
                                      float *out, void *stream_handle) {
    int64_t total;
    if (!x || !y || !out) return SAVA_ERROR_NULL_POINTER;
    if (!sava_positive_product(n, C, H, W, &total)) return SAVA_ERROR_INVALID_ARGUMENT;
    if (H < SAVA_SSIM_WINDOW || W < SAVA_SSIM_WINDOW) return SAVA_ERROR_INVALID_ARGUMENT;
    cudaStream_t stream = (cudaStream_t)stream_handle;
    float taps[SAVA_SSIM_WINDOW];
    sava_ssim_taps(taps);
    float *device_taps = NULL;
    double *sums = NULL;
    SAVA_CUDA_CHECK(cudaMallocAsync((void **)&device_taps, sizeof(taps), stream));
    if (cudaMallocAsync((void **)&sums, (size_t)n * sizeof(double), stream) != cudaSuccess) {
        cudaFreeAsync(device_taps, stream);
        return SAVA_ERROR_CUDA;
    }
    cudaError_t error = cudaMemcpyAsync(device_taps, taps, sizeof(taps), cudaMemcpyHostToDevice, stream);
    if (error == cudaSuccess) error = cudaMemsetAsync(sums, 0, (size_t)n * sizeof(double), stream);
    const long long oh = H - SAVA_SSIM_WINDOW + 1, ow = W - SAVA_SSIM_WINDOW + 1, work = n * C * oh * ow;
    if (error == cudaSuccess) {
        sava_ssim_kernel<<<(unsigned)((work + THREADS - 1) / THREADS), THREADS, 0, stream>>>(x, y, n, C, H, W,
                                                                                           device_taps, sums);
        error = cudaGetLastError();
    }
    if (error == cudaSuccess) {
        sava_ssim_finish_kernel<<<(unsigned)((n + THREADS - 1) / THREADS), THREADS, 0, stream>>>(
            sums, out, n, (double)(C * oh * ow));
        error = cudaGetLastError();
    }
    /* The taps are copied from this stack frame: wait before it goes away. */
    if (error == cudaSuccess) error = cudaStreamSynchronize(stream);
    cudaFreeAsync(sums, stream);
    cudaFreeAsync(device_taps, stream);
    return error == cudaSuccess ? SAVA_OK : SAVA_ERROR_CUDA;
}
