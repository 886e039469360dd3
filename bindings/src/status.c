/* Status strings and the library version. */
#include "sava/sava.h"

#ifndef SAVA_VERSION_STRING
#define SAVA_VERSION_STRING "unknown"
#endif

const char *sava_status_string(sava_status status) {
    switch (status) {
        case SAVA_OK: return "ok";
        case SAVA_ERROR_NULL_POINTER: return "a required pointer is NULL";
        case SAVA_ERROR_INVALID_ARGUMENT: return "an argument is out of range";
        case SAVA_ERROR_SHAPE_MISMATCH: return "tensor shapes do not fit together";
        case SAVA_ERROR_IO: return "the file cannot be read";
        case SAVA_ERROR_FORMAT: return "the file is not a valid sava perturbation file";
        case SAVA_ERROR_OUT_OF_MEMORY: return "out of memory";
        case SAVA_ERROR_NOT_FOUND: return "no entry of that name";
        case SAVA_ERROR_CUDA: return "a CUDA call or kernel launch failed";
        case SAVA_ERROR_NOT_BUILT: return "the library was built without this backend";
        case SAVA_ERROR_NON_FINITE: return "a flow or noise value is NaN or infinite";
    }
    return "unknown status";
}

const char *sava_version(void) { return SAVA_VERSION_STRING; }
