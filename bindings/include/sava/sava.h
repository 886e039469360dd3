/* sava: apply and measure sparse adversarial video perturbations in C and C++.
 *
 * The same functions as the Python engine (sava.kernels.reference):
 *   apply:  for each selected frame t,  out_t = clamp(clamp(warp(x_t, flow)) + noise, 0, 1)
 *           (bilinear warp, flow in pixels, channel 0 = rows, channel 1 = columns,
 *           border clamping); every other frame is copied unchanged.
 *   ssim:   single-scale SSIM per frame (11 x 11 Gaussian window, sigma 1.5,
 *           K1 = 0.01, K2 = 0.03, data range 1, valid windows), averaged over
 *           channels and positions.
 *   files:  the perturbation files `sava attack` writes (safetensors: flow,
 *           noise, frames, and string metadata).
 *
 * Layout: float32, contiguous, video T x C x H x W with values in [0, 1];
 * flow k x 2 x H x W; noise k x C x NH x NW where NH x NW is H x W or 1 x 1
 * (a flicker: one offset per channel). Every function returns a status and
 * never writes outside the buffers whose sizes the arguments describe.
 */
#ifndef SAVA_SAVA_H
#define SAVA_SAVA_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#  if defined(SAVA_BUILDING)
#    define SAVA_API __declspec(dllexport)
#  else
#    define SAVA_API __declspec(dllimport)
#  endif
#else
#  define SAVA_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sava_status {
    SAVA_OK = 0,
    SAVA_ERROR_NULL_POINTER = 1,
    SAVA_ERROR_INVALID_ARGUMENT = 2, /* a size or index out of range */
    SAVA_ERROR_SHAPE_MISMATCH = 3,   /* tensors that do not fit together */
    SAVA_ERROR_IO = 4,               /* a file that cannot be read */
    SAVA_ERROR_FORMAT = 5,           /* a file that is not a valid perturbation file */
    SAVA_ERROR_OUT_OF_MEMORY = 6,
    SAVA_ERROR_NOT_FOUND = 7,        /* no tensor or metadata entry of that name */
    SAVA_ERROR_CUDA = 8,             /* a CUDA call or kernel launch failed */
    SAVA_ERROR_NOT_BUILT = 9,        /* the library was built without this backend */
    SAVA_ERROR_NON_FINITE = 10       /* a flow or noise value is NaN or infinite */
} sava_status;

SAVA_API const char *sava_status_string(sava_status status);
SAVA_API const char *sava_version(void);

/* ---------------------------------------------------------------- CPU */
/* out (T x C x H x W) = video with the k frames `frames` perturbed. `flow`
 * or `noise` may be NULL (noise only, or flow only). `out` may equal `video`.
 * `flow_count` and `noise_count` are the numbers of floats the caller's flow
 * and noise buffers hold (0 for NULL): they must equal k x 2 x H x W and
 * k x C x noise_h x noise_w, so a buffer of the wrong size is an error, not a
 * read past its end. A NaN or infinite flow or noise value is an error
 * (SAVA_ERROR_NON_FINITE), checked before anything is written. */
SAVA_API sava_status sava_apply_cpu(const float *video, float *out, int64_t T, int64_t C, int64_t H, int64_t W,
                                    const int64_t *frames, int64_t k, const float *flow, int64_t flow_count,
                                    const float *noise, int64_t noise_count, int64_t noise_h, int64_t noise_w);

/* out[i] = SSIM of frame i of x and y (n x C x H x W each); H and W >= 11. */
SAVA_API sava_status sava_ssim_cpu(const float *x, const float *y, int64_t n, int64_t C, int64_t H, int64_t W,
                                   float *out);

/* ---------------------------------------------------------------- CUDA */
/* Device pointers; `stream` is a cudaStream_t (NULL: the default stream). The
 * call returns once the work is queued; launch errors are checked. Returns
 * SAVA_ERROR_NOT_BUILT when the library was built without CUDA. Sizes are
 * checked as on the CPU; values stay on the device and are not scanned: a NaN
 * flow is clamped to the frame's border (defined, never out of bounds). */
SAVA_API int sava_has_cuda(void);
SAVA_API sava_status sava_apply_cuda(const float *video, float *out, int64_t T, int64_t C, int64_t H, int64_t W,
                                     const int64_t *frames, int64_t k, const float *flow, int64_t flow_count,
                                     const float *noise, int64_t noise_count, int64_t noise_h, int64_t noise_w,
                                     void *stream);
SAVA_API sava_status sava_ssim_cuda(const float *x, const float *y, int64_t n, int64_t C, int64_t H, int64_t W,
                                    float *out, void *stream);

/* ---------------------------------------------------------------- files */
typedef struct sava_file sava_file;

typedef enum sava_dtype { SAVA_F32 = 0, SAVA_I64 = 1 } sava_dtype;

typedef struct sava_tensor {
    const void *data; /* owned by the file; valid until sava_file_close */
    sava_dtype dtype;
    int ndim;
    int64_t shape[8];
} sava_tensor;

SAVA_API sava_status sava_file_open(const char *path, sava_file **file);
SAVA_API void sava_file_close(sava_file *file);
/* A tensor by name ("flow", "noise", "frames"). */
SAVA_API sava_status sava_file_tensor(const sava_file *file, const char *name, sava_tensor *tensor);
/* A metadata string by key ("model", "settings", ...); owned by the file. */
SAVA_API sava_status sava_file_metadata(const sava_file *file, const char *key, const char **value);

/* Apply a perturbation file to a T x C x H x W video in memory (CPU). */
SAVA_API sava_status sava_apply_file_cpu(const sava_file *file, const float *video, float *out, int64_t T,
                                         int64_t C, int64_t H, int64_t W);

#ifdef __cplusplus
}
#endif

#endif /* SAVA_SAVA_H */
