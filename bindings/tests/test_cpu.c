/* The CPU library against hand-computed answers and a direct double-precision
 * SSIM; the file reader against files this test writes, truncates and mutates. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sava/sava.h"

static int failures = 0;
#define CHECK(cond, ...)                                          \
    do {                                                          \
        if (!(cond)) {                                            \
            ++failures;                                           \
            fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);       \
            fprintf(stderr, __VA_ARGS__);                         \
            fprintf(stderr, "\n");                                \
        }                                                         \
    } while (0)

static unsigned rng_state = 12345u;
static float uniform(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)((rng_state >> 8) & 0xFFFFFF) / (float)0x1000000;
}

static void test_apply_identity_shift_noise(void) {
    enum { T = 3, C = 2, H = 12, W = 13 };
    static float video[T * C * H * W], out[T * C * H * W], flow[2 * H * W], noise[C * H * W];
    for (int i = 0; i < T * C * H * W; ++i) video[i] = uniform();
    const int64_t frames[1] = {1};
    memset(flow, 0, sizeof(flow));
    CHECK(sava_apply_cpu(video, out, T, C, H, W, frames, 1, flow, 2 * H * W, NULL, 0, 0, 0) == SAVA_OK, "zero flow");
    CHECK(memcmp(out, video, sizeof(video)) == 0, "a zero flow changes nothing");
    /* flow dh = 1 everywhere: row h takes row h + 1, the last row its own (border). */
    for (int i = 0; i < H * W; ++i) flow[i] = 1.f;
    CHECK(sava_apply_cpu(video, out, T, C, H, W, frames, 1, flow, 2 * H * W, NULL, 0, 0, 0) == SAVA_OK, "shift");
    for (int c = 0; c < C; ++c)
        for (int h = 0; h < H; ++h)
            for (int w = 0; w < W; ++w) {
                const int src = h + 1 < H ? h + 1 : H - 1;
                const float want = video[((1 * C + c) * H + src) * W + w], got = out[((1 * C + c) * H + h) * W + w];
                CHECK(fabsf(want - got) < 1e-6f, "shift c%d h%d w%d: %g vs %g", c, h, w, want, got);
            }
    CHECK(memcmp(out, video, sizeof(float) * C * H * W) == 0, "frame 0 untouched");
    /* half-pixel dw: the mean of two neighbours */
    for (int i = 0; i < H * W; ++i) { flow[i] = 0.f; flow[H * W + i] = 0.5f; }
    sava_apply_cpu(video, out, T, C, H, W, frames, 1, flow, 2 * H * W, NULL, 0, 0, 0);
    const float *f1 = video + C * H * W;
    CHECK(fabsf(out[C * H * W + 3] - 0.5f * (f1[3] + f1[4])) < 1e-6f, "half-pixel bilinear");
    /* noise with both clamps */
    for (int i = 0; i < C * H * W; ++i) noise[i] = (i % 3 == 0) ? 2.f : (i % 3 == 1 ? -2.f : 0.125f);
    sava_apply_cpu(video, out, T, C, H, W, frames, 1, NULL, 0, noise, C * H * W, H, W);
    for (int i = 0; i < C * H * W; ++i) {
        const float want = i % 3 == 0 ? 1.f : (i % 3 == 1 ? 0.f : fminf(1.f, f1[i] + 0.125f));
        CHECK(fabsf(out[C * H * W + i] - want) < 1e-6f, "noise %d", i);
    }
    /* a flicker: one offset per channel */
    const float offsets[C] = {0.25f, -0.25f};
    sava_apply_cpu(video, out, T, C, H, W, frames, 1, NULL, 0, offsets, C, 1, 1);
    CHECK(fabsf(out[C * H * W + H * W + 5] - fmaxf(0.f, f1[H * W + 5] - 0.25f)) < 1e-6f, "flicker");
    /* in place equals out of place */
    static float inplace[T * C * H * W];
    memcpy(inplace, video, sizeof(video));
    for (int i = 0; i < 2 * H * W; ++i) flow[i] = 2.f * uniform() - 1.f;
    sava_apply_cpu(video, out, T, C, H, W, frames, 1, flow, 2 * H * W, noise, C * H * W, H, W);
    sava_apply_cpu(inplace, inplace, T, C, H, W, frames, 1, flow, 2 * H * W, noise, C * H * W, H, W);
    CHECK(memcmp(out, inplace, sizeof(out)) == 0, "in place");
}

static void test_apply_errors(void) {
    float v[2 * 1 * 4 * 4] = {0}, o[2 * 1 * 4 * 4];
    const int64_t bad[2] = {0, 0}, outside[1] = {2}, one[1] = {0};
    CHECK(sava_apply_cpu(NULL, o, 2, 1, 4, 4, one, 1, NULL, 0, NULL, 0, 0, 0) == SAVA_ERROR_NULL_POINTER, "null video");
    CHECK(sava_apply_cpu(v, o, 2, 1, 4, 4, NULL, 1, NULL, 0, NULL, 0, 0, 0) == SAVA_ERROR_NULL_POINTER, "null frames");
    CHECK(sava_apply_cpu(v, o, 2, 1, 4, 4, bad, 2, NULL, 0, NULL, 0, 0, 0) == SAVA_ERROR_INVALID_ARGUMENT, "duplicates");
    CHECK(sava_apply_cpu(v, o, 2, 1, 4, 4, outside, 1, NULL, 0, NULL, 0, 0, 0) == SAVA_ERROR_INVALID_ARGUMENT, "t >= T");
    CHECK(sava_apply_cpu(v, o, 2, 1, 4, 4, one, 3, NULL, 0, NULL, 0, 0, 0) == SAVA_ERROR_INVALID_ARGUMENT, "k > T");
    CHECK(sava_apply_cpu(v, o, 2, 1, 4, 4, one, 1, NULL, 0, v, 4, 2, 2) == SAVA_ERROR_SHAPE_MISMATCH, "noise shape");
    CHECK(sava_apply_cpu(v, o, 2, 0, 4, 4, one, 1, NULL, 0, NULL, 0, 0, 0) == SAVA_ERROR_INVALID_ARGUMENT, "C = 0");
    CHECK(sava_apply_cpu(v, o, (int64_t)1 << 40, 1 << 20, 4, 4, one, 1, NULL, 0, NULL, 0, 0, 0) ==
              SAVA_ERROR_INVALID_ARGUMENT, "overflowing sizes");
    /* Buffers whose declared sizes disagree with k, C, H, W: refused before anything is read. */
    CHECK(sava_apply_cpu(v, o, 2, 1, 4, 4, one, 1, v, 2 * 4 * 4 - 1, NULL, 0, 0, 0) == SAVA_ERROR_SHAPE_MISMATCH,
          "short flow");
    CHECK(sava_apply_cpu(v, o, 2, 1, 4, 4, one, 1, NULL, 0, v, 4 * 4 + 1, 4, 4) == SAVA_ERROR_SHAPE_MISMATCH,
          "long noise");
    CHECK(sava_apply_cpu(v, o, 2, 1, 4, 4, one, 1, NULL, 2 * 4 * 4, NULL, 0, 0, 0) == SAVA_ERROR_SHAPE_MISMATCH,
          "a count for a NULL flow");
    /* Non-finite flow or noise: an error status, and the output is not written. */
    float flow[2 * 4 * 4] = {0}, noise[4 * 4] = {0};
    for (int i = 0; i < 2 * 4 * 4; ++i) o[i] = -7.f;
    flow[5] = NAN;
    CHECK(sava_apply_cpu(v, o, 2, 1, 4, 4, one, 1, flow, 2 * 4 * 4, NULL, 0, 0, 0) == SAVA_ERROR_NON_FINITE, "NaN flow");
    CHECK(o[0] == -7.f, "nothing written after a NaN flow");
    flow[5] = 0.f;
    noise[3] = INFINITY;
    CHECK(sava_apply_cpu(v, o, 2, 1, 4, 4, one, 1, flow, 2 * 4 * 4, noise, 4 * 4, 4, 4) == SAVA_ERROR_NON_FINITE,
          "infinite noise");
    CHECK(strcmp(sava_status_string(SAVA_ERROR_NON_FINITE), "a flow or noise value is NaN or infinite") == 0,
          "non-finite string");
    CHECK(strcmp(sava_status_string(SAVA_ERROR_SHAPE_MISMATCH), "tensor shapes do not fit together") == 0, "string");
}

/* SSIM by its definition, window by window, in double. */
static double direct_ssim(const float *x, const float *y, int C, int H, int W) {
    double g[11], total = 0, sum = 0;
    for (int i = 0; i < 11; ++i) { g[i] = exp(-(i - 5.0) * (i - 5.0) / 4.5); total += g[i]; }
    for (int i = 0; i < 11; ++i) g[i] /= total;
    for (int c = 0; c < C; ++c)
        for (int h = 0; h + 11 <= H; ++h)
            for (int w = 0; w + 11 <= W; ++w) {
                double mx = 0, my = 0, xx = 0, yy = 0, xy = 0;
                for (int i = 0; i < 11; ++i)
                    for (int j = 0; j < 11; ++j) {
                        const double k = g[i] * g[j], a = x[(c * H + h + i) * W + w + j], b = y[(c * H + h + i) * W + w + j];
                        mx += k * a; my += k * b; xx += k * a * a; yy += k * b * b; xy += k * a * b;
                    }
                const double c1 = 1e-4, c2 = 9e-4, vx = xx - mx * mx, vy = yy - my * my, cv = xy - mx * my;
                sum += ((2 * mx * my + c1) * (2 * cv + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2));
            }
    return sum / (C * (H - 10) * (W - 10));
}

static void test_ssim(void) {
    enum { N = 2, C = 3, H = 16, W = 19 };
    static float x[N * C * H * W], y[N * C * H * W];
    float out[N];
    for (int i = 0; i < N * C * H * W; ++i) { x[i] = uniform(); y[i] = fminf(1.f, fmaxf(0.f, x[i] + 0.2f * (uniform() - 0.5f))); }
    CHECK(sava_ssim_cpu(x, x, N, C, H, W, out) == SAVA_OK && fabsf(out[0] - 1.f) < 1e-6f, "ssim(x, x) = 1");
    CHECK(sava_ssim_cpu(x, y, N, C, H, W, out) == SAVA_OK, "ssim");
    for (int f = 0; f < N; ++f) {
        const double want = direct_ssim(x + f * C * H * W, y + f * C * H * W, C, H, W);
        CHECK(fabs(out[f] - want) < 1e-5, "frame %d: %g vs direct %g", f, out[f], want);
    }
    CHECK(sava_ssim_cpu(x, y, N, C, 10, W, out) == SAVA_ERROR_INVALID_ARGUMENT, "frames below the window");
    CHECK(sava_ssim_cpu(x, NULL, N, C, H, W, out) == SAVA_ERROR_NULL_POINTER, "null");
}

/* ---------------------------------------------------------------- files */
static size_t make_file(unsigned char *buf, size_t cap, const char *header, const float *flow, int flow_n,
                        const int64_t *frames, int frames_n) {
    const size_t n = strlen(header);
    size_t at = 0;
    for (int i = 0; i < 8; ++i) buf[at++] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(buf + at, header, n);
    at += n;
    memcpy(buf + at, frames, sizeof(int64_t) * frames_n);
    at += sizeof(int64_t) * frames_n;
    memcpy(buf + at, flow, sizeof(float) * flow_n);
    at += sizeof(float) * flow_n;
    (void)cap;
    return at;
}

static void write_bytes(const char *path, const unsigned char *data, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
}

static void test_files(void) {
    enum { K = 1, H = 4, W = 5 };
    float flow[K * 2 * H * W];
    for (int i = 0; i < K * 2 * H * W; ++i) flow[i] = 0.01f * i;
    const int64_t frames[K] = {2};
    char header[512];
    snprintf(header, sizeof(header),
             "{\"frames\":{\"dtype\":\"I64\",\"shape\":[%d],\"data_offsets\":[0,%d]},"
             "\"flow\":{\"dtype\":\"F32\",\"shape\":[%d,2,%d,%d],\"data_offsets\":[%d,%d]},"
             "\"__metadata__\":{\"model\":\"c3d-camera\",\"note\":\"caf\\u00e9 \\ud83d\\ude00\"}}",
             K, 8 * K, K, H, W, 8 * K, 8 * K + 4 * K * 2 * H * W);
    static unsigned char buf[4096];
    const size_t size = make_file(buf, sizeof(buf), header, flow, K * 2 * H * W, frames, K);
    write_bytes("valid.safetensors", buf, size);
    sava_file *file = NULL;
    CHECK(sava_file_open("valid.safetensors", &file) == SAVA_OK, "open a valid file");
    if (file) {
        sava_tensor t;
        CHECK(sava_file_tensor(file, "flow", &t) == SAVA_OK && t.ndim == 4 && t.shape[1] == 2 && t.shape[3] == W &&
                  ((const float *)t.data)[7] == flow[7], "flow tensor");
        CHECK(sava_file_tensor(file, "frames", &t) == SAVA_OK && ((const int64_t *)t.data)[0] == 2, "frames");
        CHECK(sava_file_tensor(file, "noise", &t) == SAVA_ERROR_NOT_FOUND, "absent tensor");
        const char *value = NULL;
        CHECK(sava_file_metadata(file, "model", &value) == SAVA_OK && strcmp(value, "c3d-camera") == 0, "metadata");
        CHECK(sava_file_metadata(file, "note", &value) == SAVA_OK &&
                  strcmp(value, "caf\xc3\xa9 \xf0\x9f\x98\x80") == 0, "escapes become UTF-8");
        static float video[3 * 1 * H * W], out[3 * 1 * H * W];
        CHECK(sava_apply_file_cpu(file, video, out, 3, 1, H, W) == SAVA_OK, "apply a file");
        CHECK(sava_apply_file_cpu(file, video, out, 3, 1, H + 1, W) == SAVA_ERROR_SHAPE_MISMATCH, "wrong size");
        sava_file_close(file);
    }
    CHECK(sava_file_open("no-such-file.safetensors", &file) == SAVA_ERROR_IO && file == NULL, "missing file");
    CHECK(sava_file_open(NULL, &file) == SAVA_ERROR_NULL_POINTER, "null path");

    /* Every truncation, and a few hundred random byte mutations: a status, never a crash. */
    for (size_t cut = 0; cut < size; ++cut) {
        write_bytes("mutated.safetensors", buf, cut);
        sava_file *f = NULL;
        const sava_status s = sava_file_open("mutated.safetensors", &f);
        CHECK(s != SAVA_OK, "truncated at %zu opened", cut);
        sava_file_close(f);
    }
    static unsigned char mutated[4096];
    int opened = 0;
    for (int round = 0; round < 400; ++round) {
        memcpy(mutated, buf, size);
        const int edits = 1 + round % 4;
        for (int e = 0; e < edits; ++e) {
            const size_t at = (size_t)(uniform() * (float)(round % 2 ? 8 + strlen(header) : size));
            mutated[at < size ? at : size - 1] = (unsigned char)(uniform() * 256.f);
        }
        write_bytes("mutated.safetensors", mutated, size);
        sava_file *f = NULL;
        if (sava_file_open("mutated.safetensors", &f) == SAVA_OK) {
            ++opened;
            static float video[3 * 1 * H * W], out[3 * 1 * H * W];
            (void)sava_apply_file_cpu(f, video, out, 3, 1, H, W); /* must not read or write out of bounds */
            sava_file_close(f);
        }
    }
    /* Flow values made of random bit patterns (NaN, infinities, huge and tiny numbers among them): apply gives
     * SAVA_OK or SAVA_ERROR_NON_FINITE, never undefined behaviour (UBSan) or NaN pixels. */
    const size_t data_at = 8 + strlen(header) + sizeof(int64_t) * K;
    for (int round = 0; round < 200; ++round) {
        memcpy(mutated, buf, size);
        uint32_t bits = (uint32_t)(uniform() * 4294967295.0f);
        if (round % 3 == 0) bits = 0x7fc00000u | (bits & 0xffu);      /* a NaN */
        if (round % 3 == 1) bits = (bits & 0x80000000u) | 0x7f800000u; /* an infinity */
        const size_t at = data_at + 4 * (size_t)(uniform() * (float)(K * 2 * H * W - 1));
        memcpy(mutated + at, &bits, 4);
        write_bytes("mutated.safetensors", mutated, size);
        sava_file *f = NULL;
        CHECK(sava_file_open("mutated.safetensors", &f) == SAVA_OK, "a data mutation must still open");
        if (f) {
            static float video[3 * 1 * H * W], out[3 * 1 * H * W];
            float value;
            memcpy(&value, &bits, 4);
            const sava_status s = sava_apply_file_cpu(f, video, out, 3, 1, H, W);
            CHECK(s == (isfinite(value) ? SAVA_OK : SAVA_ERROR_NON_FINITE), "bits %08x: status %d", bits, (int)s);
            for (int i = 0; s == SAVA_OK && i < 3 * H * W; ++i) CHECK(isfinite(out[i]), "NaN pixel %d", i);
            sava_file_close(f);
        }
    }
    /* A flow tensor whose frame count disagrees with the frames tensor: a status, not a read past its end. */
    {
        char short_header[512];
        snprintf(short_header, sizeof(short_header),
                 "{\"frames\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]},"
                 "\"flow\":{\"dtype\":\"F32\",\"shape\":[1,2,%d,%d],\"data_offsets\":[16,%d]}}",
                 H, W, 16 + 4 * 2 * H * W);
        const int64_t two[2] = {0, 1};
        const size_t n = make_file(mutated, sizeof(mutated), short_header, flow, 2 * H * W, two, 2);
        write_bytes("mutated.safetensors", mutated, n);
        sava_file *f = NULL;
        CHECK(sava_file_open("mutated.safetensors", &f) == SAVA_OK, "short flow file opens");
        static float video[3 * 1 * H * W], out[3 * 1 * H * W];
        CHECK(sava_apply_file_cpu(f, video, out, 3, 1, H, W) == SAVA_ERROR_SHAPE_MISMATCH, "short flow applied");
        sava_file_close(f);
    }
    /* An absurd header length. */
    memcpy(mutated, buf, size);
    for (int i = 0; i < 8; ++i) mutated[i] = 0xFF;
    write_bytes("mutated.safetensors", mutated, size);
    CHECK(sava_file_open("mutated.safetensors", &file) == SAVA_ERROR_FORMAT, "absurd header length");
    /* Wrong dtype and inconsistent shapes. */
    const char *bad_headers[] = {
        "{\"frames\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,8]}}",
        "{\"frames\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,8]}}",
        "{\"frames\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[8,0]}}",
        "{\"frames\":{\"dtype\":\"I64\",\"shape\":[-1],\"data_offsets\":[0,8]}}",
        "{\"__metadata__\":{\"k\":\"\xff\xfe\"}}",
        "{\"__metadata__\":{\"k\":1}}",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    };
    for (size_t i = 0; i < sizeof(bad_headers) / sizeof(*bad_headers); ++i) {
        const size_t n = make_file(mutated, sizeof(mutated), bad_headers[i], flow, 0, frames, 1);
        write_bytes("mutated.safetensors", mutated, n);
        CHECK(sava_file_open("mutated.safetensors", &file) == SAVA_ERROR_FORMAT, "bad header %zu accepted", i);
    }
    printf("mutation rounds that still parsed: %d of 400\n", opened);
}

int main(void) {
    printf("sava %s\n", sava_version());
    test_apply_identity_shift_noise();
    test_apply_errors();
    test_ssim();
    test_files();
    CHECK(sava_has_cuda() == 0 || sava_has_cuda() == 1, "has_cuda");
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("all checks passed\n");
    return 0;
}
