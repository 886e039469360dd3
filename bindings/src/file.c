/* Reading the perturbation files `sava attack` writes (the safetensors format:
 * an 8-byte little-endian header length, a JSON header, then the raw tensor
 * bytes). Every length, offset and string is checked against the file before
 * it is used; anything unexpected is SAVA_ERROR_FORMAT, never a crash. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sava/sava.h"

#define MAX_HEADER ((uint64_t)16 << 20)
#define MAX_ENTRIES 64
#define MAX_DEPTH 8
#define MAX_DIMS 8

typedef struct {
    char *name;
    sava_tensor tensor;
    void *storage; /* an aligned copy of the tensor's bytes */
} entry;

struct sava_file {
    entry tensors[MAX_ENTRIES];
    int num_tensors;
    char *meta_keys[MAX_ENTRIES];
    char *meta_values[MAX_ENTRIES];
    int num_meta;
};

typedef struct {
    const char *p, *end;
} cursor;

static void skip_space(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t')) ++c->p;
}

static int expect(cursor *c, char ch) {
    skip_space(c);
    if (c->p >= c->end || *c->p != ch) return 0;
    ++c->p;
    return 1;
}

static int peek(cursor *c, char ch) {
    skip_space(c);
    return c->p < c->end && *c->p == ch;
}

/* Bytes of one UTF-8 sequence starting at s (0 when invalid). */
static int utf8_length(const unsigned char *s, const unsigned char *end) {
    int n;
    if (s[0] < 0x80) return 1;
    if ((s[0] & 0xE0) == 0xC0) n = 2;
    else if ((s[0] & 0xF0) == 0xE0) n = 3;
    else if ((s[0] & 0xF8) == 0xF0) n = 4;
    else return 0;
    if (end - s < n) return 0;
    for (int i = 1; i < n; ++i)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return n;
}

static int put_utf8(char *out, unsigned code) {
    if (code < 0x80) { out[0] = (char)code; return 1; }
    if (code < 0x800) { out[0] = (char)(0xC0 | (code >> 6)); out[1] = (char)(0x80 | (code & 0x3F)); return 2; }
    if (code < 0x10000) {
        out[0] = (char)(0xE0 | (code >> 12)); out[1] = (char)(0x80 | ((code >> 6) & 0x3F));
        out[2] = (char)(0x80 | (code & 0x3F)); return 3;
    }
    out[0] = (char)(0xF0 | (code >> 18)); out[1] = (char)(0x80 | ((code >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((code >> 6) & 0x3F)); out[3] = (char)(0x80 | (code & 0x3F)); return 4;
}

static int hex4(const char *s, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
        const char ch = s[i];
        v <<= 4;
        if (ch >= '0' && ch <= '9') v |= (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f') v |= (unsigned)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F') v |= (unsigned)(ch - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

/* A JSON string as a new NUL-terminated UTF-8 string (NULL on any error). */
static char *parse_string(cursor *c) {
    if (!expect(c, '"')) return NULL;
    const char *start = c->p;
    size_t cap = 1;
    while (c->p < c->end && *c->p != '"') {
        if (*c->p == '\\' && c->end - c->p < 2) return NULL;
        c->p += (*c->p == '\\') ? 2 : 1;
        ++cap;
    }
    if (c->p >= c->end) return NULL;
    char *out = (char *)malloc(cap * 4 + 1), *o = out;
    if (!out) return NULL;
    const char *s = start;
    while (s < c->p) {
        if (*s == '\\') {
            if (s + 1 >= c->p) goto bad;
            const char e = s[1];
            s += 2;
            switch (e) {
                case '"': *o++ = '"'; break;
                case '\\': *o++ = '\\'; break;
                case '/': *o++ = '/'; break;
                case 'b': *o++ = '\b'; break;
                case 'f': *o++ = '\f'; break;
                case 'n': *o++ = '\n'; break;
                case 'r': *o++ = '\r'; break;
                case 't': *o++ = '\t'; break;
                case 'u': {
                    unsigned code, low;
                    if (c->p - s < 4 || !hex4(s, &code)) goto bad;
                    s += 4;
                    if (code >= 0xD800 && code < 0xDC00) { /* a surrogate pair */
                        if (c->p - s < 6 || s[0] != '\\' || s[1] != 'u' || !hex4(s + 2, &low) || low < 0xDC00 ||
                            low >= 0xE000)
                            goto bad;
                        s += 6;
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                    } else if (code >= 0xDC00 && code < 0xE000) {
                        goto bad;
                    }
                    if (code == 0) goto bad; /* no NUL inside a C string */
                    o += put_utf8(o, code);
                    break;
                }
                default: goto bad;
            }
        } else {
            const int n = utf8_length((const unsigned char *)s, (const unsigned char *)c->p);
            if (n == 0 || (unsigned char)s[0] < 0x20) goto bad;
            memcpy(o, s, (size_t)n);
            o += n;
            s += n;
        }
    }
    *o = '\0';
    ++c->p; /* the closing quote */
    return out;
bad:
    free(out);
    return NULL;
}

static int parse_int(cursor *c, int64_t *out) {
    skip_space(c);
    int64_t v = 0;
    const char *start = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        if (v > (INT64_MAX - 9) / 10) return 0;
        v = v * 10 + (*c->p - '0');
        ++c->p;
    }
    *out = v;
    return c->p > start;
}

static int skip_value(cursor *c, int depth);

static int skip_container(cursor *c, char close, int depth, int keyed) {
    if (peek(c, close)) { ++c->p; return 1; }
    for (;;) {
        if (keyed) {
            char *key = parse_string(c);
            if (!key) return 0;
            free(key);
            if (!expect(c, ':')) return 0;
        }
        if (!skip_value(c, depth + 1)) return 0;
        if (peek(c, ',')) { ++c->p; continue; }
        return expect(c, close);
    }
}

static int skip_value(cursor *c, int depth) {
    if (depth > MAX_DEPTH) return 0;
    skip_space(c);
    if (c->p >= c->end) return 0;
    if (*c->p == '{') { ++c->p; return skip_container(c, '}', depth, 1); }
    if (*c->p == '[') { ++c->p; return skip_container(c, ']', depth, 0); }
    if (*c->p == '"') { char *s = parse_string(c); free(s); return s != NULL; }
    /* numbers, true, false, null: a run of their characters */
    const char *start = c->p;
    while (c->p < c->end && strchr("0123456789+-.eEtruefalsn", *c->p)) ++c->p;
    return c->p > start;
}

static int parse_int_array(cursor *c, int64_t *values, int max, int *count) {
    if (!expect(c, '[')) return 0;
    *count = 0;
    if (peek(c, ']')) { ++c->p; return 1; }
    for (;;) {
        if (*count >= max || !parse_int(c, &values[*count])) return 0;
        ++*count;
        if (peek(c, ',')) { ++c->p; continue; }
        return expect(c, ']');
    }
}

typedef struct {
    int dtype; /* -1: unknown */
    int ndim;
    int64_t shape[MAX_DIMS];
    int64_t offsets[2];
    int have_dtype, have_shape, have_offsets;
} tensor_header;

static int parse_tensor_header(cursor *c, tensor_header *t) {
    memset(t, 0, sizeof(*t));
    if (!expect(c, '{')) return 0;
    if (peek(c, '}')) { ++c->p; return 0; }
    for (;;) {
        char *key = parse_string(c);
        if (!key || !expect(c, ':')) { free(key); return 0; }
        int ok;
        if (strcmp(key, "dtype") == 0) {
            char *dtype = parse_string(c);
            ok = dtype != NULL;
            t->dtype = !dtype ? -1 : strcmp(dtype, "F32") == 0 ? SAVA_F32 : strcmp(dtype, "I64") == 0 ? SAVA_I64 : -1;
            t->have_dtype = ok && t->dtype >= 0;
            free(dtype);
        } else if (strcmp(key, "shape") == 0) {
            ok = t->have_shape = parse_int_array(c, t->shape, MAX_DIMS, &t->ndim);
        } else if (strcmp(key, "data_offsets") == 0) {
            int count = 0;
            ok = parse_int_array(c, t->offsets, 2, &count) && count == 2;
            t->have_offsets = ok;
        } else {
            ok = skip_value(c, 1);
        }
        free(key);
        if (!ok) return 0;
        if (peek(c, ',')) { ++c->p; continue; }
        return expect(c, '}') && t->have_dtype && t->have_shape && t->have_offsets;
    }
}

static int parse_metadata(cursor *c, sava_file *f) {
    if (!expect(c, '{')) return 0;
    if (peek(c, '}')) { ++c->p; return 1; }
    for (;;) {
        if (f->num_meta >= MAX_ENTRIES) return 0;
        char *key = parse_string(c);
        if (!key) return 0;
        char *value = expect(c, ':') ? parse_string(c) : NULL;
        if (!value) { free(key); return 0; }
        f->meta_keys[f->num_meta] = key;
        f->meta_values[f->num_meta] = value;
        ++f->num_meta;
        if (peek(c, ',')) { ++c->p; continue; }
        return expect(c, '}');
    }
}

void sava_file_close(sava_file *f) {
    if (!f) return;
    for (int i = 0; i < f->num_tensors; ++i) { free(f->tensors[i].name); free(f->tensors[i].storage); }
    for (int i = 0; i < f->num_meta; ++i) { free(f->meta_keys[i]); free(f->meta_values[i]); }
    free(f);
}

static sava_status read_all(const char *path, unsigned char **data, size_t *size) {
    FILE *handle = fopen(path, "rb");
    if (!handle) return SAVA_ERROR_IO;
    long length = -1;
    if (fseek(handle, 0, SEEK_END) == 0) length = ftell(handle);
    if (length < 0 || fseek(handle, 0, SEEK_SET) != 0) { fclose(handle); return SAVA_ERROR_IO; }
    *data = (unsigned char *)malloc(length > 0 ? (size_t)length : 1);
    if (!*data) { fclose(handle); return SAVA_ERROR_OUT_OF_MEMORY; }
    *size = fread(*data, 1, (size_t)length, handle);
    fclose(handle);
    if (*size != (size_t)length) { free(*data); return SAVA_ERROR_IO; }
    return SAVA_OK;
}

static sava_status parse_file(const unsigned char *data, size_t size, sava_file *f) {
    if (size < 8) return SAVA_ERROR_FORMAT;
    uint64_t header = 0;
    for (int i = 7; i >= 0; --i) header = (header << 8) | data[i];
    if (header < 2 || header > MAX_HEADER || header > size - 8) return SAVA_ERROR_FORMAT;
    const unsigned char *payload = data + 8 + header;
    const size_t payload_size = size - 8 - (size_t)header;
    cursor c = {(const char *)data + 8, (const char *)data + 8 + header};
    if (!expect(&c, '{')) return SAVA_ERROR_FORMAT;
    if (peek(&c, '}')) { ++c.p; return SAVA_OK; }
    for (;;) {
        char *key = parse_string(&c);
        if (!key || !expect(&c, ':')) { free(key); return SAVA_ERROR_FORMAT; }
        if (strcmp(key, "__metadata__") == 0) {
            free(key);
            if (!parse_metadata(&c, f)) return SAVA_ERROR_FORMAT;
        } else {
            tensor_header t;
            if (f->num_tensors >= MAX_ENTRIES || !parse_tensor_header(&c, &t)) { free(key); return SAVA_ERROR_FORMAT; }
            int64_t count = 1;
            for (int d = 0; d < t.ndim; ++d) {
                /* every dtype read is >= 4 bytes: more elements than payload / 4 cannot fit */
                if (t.shape[d] != 0 && count > (int64_t)(payload_size / 4 + 1) / t.shape[d]) {
                    free(key);
                    return SAVA_ERROR_FORMAT;
                }
                count *= t.shape[d];
            }
            const int64_t bytes = count * (t.dtype == SAVA_F32 ? 4 : 8);
            if (t.offsets[0] > t.offsets[1] || (uint64_t)t.offsets[1] > payload_size ||
                t.offsets[1] - t.offsets[0] != bytes) {
                free(key);
                return SAVA_ERROR_FORMAT;
            }
            entry *e = &f->tensors[f->num_tensors++];
            e->name = key;
            e->storage = malloc(bytes > 0 ? (size_t)bytes : 1);
            if (!e->storage) return SAVA_ERROR_OUT_OF_MEMORY;
            memcpy(e->storage, payload + t.offsets[0], (size_t)bytes);
            e->tensor.data = e->storage;
            e->tensor.dtype = (sava_dtype)t.dtype;
            e->tensor.ndim = t.ndim;
            memcpy(e->tensor.shape, t.shape, sizeof(t.shape));
        }
        if (peek(&c, ',')) { ++c.p; continue; }
        if (!expect(&c, '}')) return SAVA_ERROR_FORMAT;
        skip_space(&c);
        return c.p == c.end ? SAVA_OK : SAVA_ERROR_FORMAT;
    }
}

sava_status sava_file_open(const char *path, sava_file **file) {
    if (!path || !file) return SAVA_ERROR_NULL_POINTER;
    *file = NULL;
    unsigned char *data = NULL;
    size_t size = 0;
    sava_status status = read_all(path, &data, &size);
    if (status != SAVA_OK) return status;
    sava_file *f = (sava_file *)calloc(1, sizeof(sava_file));
    if (!f) { free(data); return SAVA_ERROR_OUT_OF_MEMORY; }
    status = parse_file(data, size, f);
    free(data);
    if (status != SAVA_OK) { sava_file_close(f); return status; }
    *file = f;
    return SAVA_OK;
}

sava_status sava_file_tensor(const sava_file *f, const char *name, sava_tensor *tensor) {
    if (!f || !name || !tensor) return SAVA_ERROR_NULL_POINTER;
    for (int i = 0; i < f->num_tensors; ++i) {
        if (strcmp(f->tensors[i].name, name) == 0) { *tensor = f->tensors[i].tensor; return SAVA_OK; }
    }
    return SAVA_ERROR_NOT_FOUND;
}

sava_status sava_file_metadata(const sava_file *f, const char *key, const char **value) {
    if (!f || !key || !value) return SAVA_ERROR_NULL_POINTER;
    for (int i = 0; i < f->num_meta; ++i) {
        if (strcmp(f->meta_keys[i], key) == 0) { *value = f->meta_values[i]; return SAVA_OK; }
    }
    return SAVA_ERROR_NOT_FOUND;
}

sava_status sava_apply_file_cpu(const sava_file *f, const float *video, float *out, int64_t T, int64_t C, int64_t H,
                                int64_t W) {
    if (!f) return SAVA_ERROR_NULL_POINTER;
    sava_tensor frames, flow, noise;
    if (sava_file_tensor(f, "frames", &frames) != SAVA_OK || frames.dtype != SAVA_I64 || frames.ndim != 1)
        return SAVA_ERROR_FORMAT;
    const int64_t k = frames.shape[0];
    const int has_flow = sava_file_tensor(f, "flow", &flow) == SAVA_OK;
    const int has_noise = sava_file_tensor(f, "noise", &noise) == SAVA_OK;
    if (has_flow && (flow.dtype != SAVA_F32 || flow.ndim != 4 || flow.shape[0] != k || flow.shape[1] != 2 ||
                     flow.shape[2] != H || flow.shape[3] != W))
        return SAVA_ERROR_SHAPE_MISMATCH;
    if (has_noise && (noise.dtype != SAVA_F32 || noise.ndim != 4 || noise.shape[0] != k || noise.shape[1] != C))
        return SAVA_ERROR_SHAPE_MISMATCH;
    const int64_t noise_h = has_noise ? noise.shape[2] : 0, noise_w = has_noise ? noise.shape[3] : 0;
    return sava_apply_cpu(video, out, T, C, H, W, (const int64_t *)frames.data, k,
                          has_flow ? (const float *)flow.data : NULL, has_flow ? k * 2 * H * W : 0,
                          has_noise ? (const float *)noise.data : NULL, has_noise ? k * C * noise_h * noise_w : 0,
                          noise_h, noise_w);
}
