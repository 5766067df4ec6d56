#define _GNU_SOURCE
#include "CEdgeSystem.h"
#include <fcntl.h>
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
