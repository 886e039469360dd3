// The README's ten-line consumer: perturb frame 0 of a clip with a flicker and measure it.
#include <sava/sava.h>

#include <cstdio>
#include <vector>

int main() {
    const int64_t T = 4, C = 3, H = 16, W = 16, frames[] = {0};
    std::vector<float> clip(T * C * H * W, 0.5f), adv(clip.size()), offset = {0.02f, -0.02f, 0.01f};
    sava_status s = sava_apply_cpu(clip.data(), adv.data(), T, C, H, W, frames, 1, nullptr, 0, offset.data(), C, 1, 1);
    float ssim = 0.f;
    if (s == SAVA_OK) s = sava_ssim_cpu(clip.data(), adv.data(), 1, C, H, W, &ssim);
    std::printf("sava %s: %s, SSIM of frame 0 = %.4f\n", sava_version(), sava_status_string(s), ssim);
    return s == SAVA_OK && ssim > 0.9f && ssim < 1.f ? 0 : 1;
}
