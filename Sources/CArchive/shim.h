#ifndef EDGEKIT_CARCHIVE_SHIM_H
#define EDGEKIT_CARCHIVE_SHIM_H
#include <archive.h>
#include <archive_entry.h>
#include <zstd.h>
#include <sys/stat.h>

/* Swift cannot import these macros as typed values; expose them with a prefix. */
static inline unsigned int edgekit_ae_ifreg(void) { return AE_IFREG; }
static inline unsigned int edgekit_ae_ifdir(void) { return AE_IFDIR; }
static inline unsigned int edgekit_ae_iflnk(void) { return AE_IFLNK; }
static inline unsigned int edgekit_ae_ifchr(void) { return AE_IFCHR; }
static inline unsigned int edgekit_ae_ifblk(void) { return AE_IFBLK; }
static inline unsigned int edgekit_ae_ififo(void) { return AE_IFIFO; }
static inline int edgekit_archive_ok(void) { return ARCHIVE_OK; }
static inline int edgekit_archive_warn(void) { return ARCHIVE_WARN; }
static inline int edgekit_archive_format_pax_restricted(void) { return ARCHIVE_FORMAT_TAR_PAX_RESTRICTED; }
static inline size_t edgekit_zstd_is_error(size_t code) { return ZSTD_isError(code); }

/* copy_file_range(2) is declared only under _GNU_SOURCE; glibc always exports it. The image
   builder copies cached disk images with it so the bytes never pass through user space. */
extern ssize_t copy_file_range(int fd_in, long long *off_in, int fd_out, long long *off_out, size_t len, unsigned int flags);
static inline ssize_t edgekit_copy_file_range(int in, long long *in_offset, int out, long long *out_offset, size_t length) {
    return copy_file_range(in, in_offset, out, out_offset, length, 0);
}

/* FICLONE: share all blocks of `source` with `destination` (reflink) on filesystems that can
   (btrfs, XFS, bcachefs); -1 elsewhere (ext4), where the caller copies instead. */
#include <sys/ioctl.h>
#include <linux/fs.h>
static inline int edgekit_reflink(int destination, int source) {
    return ioctl(destination, FICLONE, source);
}

/* A pseudo-terminal for running a tool that draws its progress only on a terminal (mmdebstrap):
   returns the controlling side and stores the terminal side, sized `columns` wide, in *terminal;
   -1 when the system has no pseudo-terminals. Declared here like copy_file_range above: glibc
   exports them, its headers hide them behind _XOPEN_SOURCE. */
#include <fcntl.h>
#include <unistd.h>
#include <termios.h>
extern int posix_openpt(int flags);
extern int grantpt(int fd);
extern int unlockpt(int fd);
extern int ptsname_r(int fd, char *buffer, size_t length);
static inline int edgekit_open_pty(int *terminal, unsigned short columns) {
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
#endif
