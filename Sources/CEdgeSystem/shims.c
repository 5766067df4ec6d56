#define _GNU_SOURCE
#include "CEdgeSystem.h"
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

ssize_t edgekit_copy_file_range(int in, long long *in_offset, int out, long long *out_offset, size_t length) {
    return copy_file_range(in, (off64_t *)in_offset, out, (off64_t *)out_offset, length, 0);
}

int edgekit_reflink(int destination, int source) {
    return ioctl(destination, FICLONE, source);
}

int edgekit_open_pty(int *terminal, unsigned short columns) {
    int controller = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (controller < 0) return -1;
    char name[128];
    if (grantpt(controller) != 0 || unlockpt(controller) != 0 || ptsname_r(controller, name, sizeof name) != 0) {
        close(controller);
        return -1;
    }
    int side = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (side < 0) {
        close(controller);
        return -1;
    }
    struct winsize size = { .ws_row = 24, .ws_col = columns };
    ioctl(side, TIOCSWINSZ, &size);
    *terminal = side;
    return controller;
}

int edgekit_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

int edgekit_spawn_closefrom(void *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np((posix_spawn_file_actions_t *)actions, from);
}

/* libzstd's stream API (zstd.h, stable since 1.0): the two buffer structs are part of its ABI. */
typedef struct { const void *src; size_t size; size_t pos; } edgekit_zstd_in;
typedef struct { void *dst; size_t size; size_t pos; } edgekit_zstd_out;
static struct {
    void *(*create)(void);
    size_t (*free)(void *);
    size_t (*decompress)(void *, edgekit_zstd_out *, edgekit_zstd_in *);
    unsigned (*is_error)(size_t);
    const char *(*error_name)(size_t);
} zstd;
static pthread_once_t zstd_once = PTHREAD_ONCE_INIT;
static const char *zstd_missing = NULL;

static void zstd_load(void) {
    void *library = dlopen("libzstd.so.1", RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) {
        zstd_missing = "libzstd.so.1 cannot be loaded (install Debian's libzstd1)";
        return;
    }
    zstd.create = (void *(*)(void))dlsym(library, "ZSTD_createDStream");
    zstd.free = (size_t (*)(void *))dlsym(library, "ZSTD_freeDStream");
    zstd.decompress = (size_t (*)(void *, edgekit_zstd_out *, edgekit_zstd_in *))dlsym(library, "ZSTD_decompressStream");
    zstd.is_error = (unsigned (*)(size_t))dlsym(library, "ZSTD_isError");
    zstd.error_name = (const char *(*)(size_t))dlsym(library, "ZSTD_getErrorName");
    if (!zstd.create || !zstd.free || !zstd.decompress || !zstd.is_error || !zstd.error_name) {
        zstd_missing = "libzstd.so.1 lacks the stream decoder (ZSTD_decompressStream)";
    }
}

void *edgekit_zstd_open(const char **error) {
    pthread_once(&zstd_once, zstd_load);
    if (zstd_missing != NULL) {
        *error = zstd_missing;
        return NULL;
    }
    void *stream = zstd.create();
    if (stream == NULL) *error = "out of memory for a zstd stream";
    return stream;
}

int edgekit_zstd_decode(void *stream, const void *input, size_t input_size, size_t *input_used,
                        void *output, size_t output_size, size_t *output_made, const char **error) {
    edgekit_zstd_in in = {input, input_size, *input_used};
    edgekit_zstd_out out = {output, output_size, 0};
    size_t result = zstd.decompress(stream, &out, &in);
    *input_used = in.pos;
    *output_made = out.pos;
    if (zstd.is_error(result)) {
        *error = zstd.error_name(result);
        return -1;
    }
    return result == 0 ? 0 : 1;
}

void edgekit_zstd_close(void *stream) {
    if (stream != NULL) zstd.free(stream);
}
