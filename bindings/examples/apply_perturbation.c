/* Apply a perturbation file written by `sava attack` to a clip and print the
 * SSIM of each perturbed frame.
 *
 *   apply_perturbation CLIP.safetensors PERTURBATION.safetensors [OUT.raw]
 *
 * CLIP.safetensors holds one float32 tensor "video" (T x C x H x W, [0, 1]),
 * e.g. written from Python with safetensors.torch.save_file({"video": clip}).
 * OUT.raw, when given, receives the adversarial clip as raw float32. */
#include <stdio.h>
#include <stdlib.h>

#include "sava/sava.h"

static int fail(const char *what, sava_status status) {
    fprintf(stderr, "%s: %s\n", what, sava_status_string(status));
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s CLIP.safetensors PERTURBATION.safetensors [OUT.raw]\n", argv[0]);
        return 2;
    }
    sava_file *clip = NULL, *perturbation = NULL;
    sava_status status = sava_file_open(argv[1], &clip);
    if (status != SAVA_OK) return fail(argv[1], status);
    status = sava_file_open(argv[2], &perturbation);
    if (status != SAVA_OK) return fail(argv[2], status);
    sava_tensor video, frames;
    if ((status = sava_file_tensor(clip, "video", &video)) != SAVA_OK) return fail("clip tensor 'video'", status);
    if (video.dtype != SAVA_F32 || video.ndim != 4) return fail("clip tensor 'video'", SAVA_ERROR_SHAPE_MISMATCH);
    const int64_t T = video.shape[0], C = video.shape[1], H = video.shape[2], W = video.shape[3];
    float *out = (float *)malloc((size_t)(T * C * H * W) * sizeof(float));
    if (!out) return fail("allocation", SAVA_ERROR_OUT_OF_MEMORY);
    status = sava_apply_file_cpu(perturbation, (const float *)video.data, out, T, C, H, W);
    if (status != SAVA_OK) return fail("apply", status);
    sava_file_tensor(perturbation, "frames", &frames);
    const char *model = "?";
    sava_file_metadata(perturbation, "model", &model);
    printf("perturbation for %s, %lld frame(s) of a %lld x %lld x %lld x %lld clip\n", model,
           (long long)frames.shape[0], (long long)T, (long long)C, (long long)H, (long long)W);
    for (int64_t i = 0; i < frames.shape[0]; ++i) {
        const int64_t t = ((const int64_t *)frames.data)[i];
        float value = 0.f;
        status = sava_ssim_cpu((const float *)video.data + t * C * H * W, out + t * C * H * W, 1, C, H, W, &value);
        if (status != SAVA_OK) return fail("ssim", status);
        printf("frame %lld: SSIM %.6f\n", (long long)t, value);
    }
    if (argc > 3) {
        FILE *handle = fopen(argv[3], "wb");
        if (!handle || fwrite(out, sizeof(float), (size_t)(T * C * H * W), handle) != (size_t)(T * C * H * W))
            return fail(argv[3], SAVA_ERROR_IO);
        fclose(handle);
    }
    free(out);
    sava_file_close(perturbation);
    sava_file_close(clip);
    return 0;
}
