#ifndef EDGEKIT_CEDGESYSTEM_H
#define EDGEKIT_CEDGESYSTEM_H
#include <stddef.h>
#include <sys/types.h>

/* The syscalls EdgeSystem needs that Swift cannot reach through Glibc's headers as shipped: they
   are declared only under _GNU_SOURCE/_XOPEN_SOURCE or are macros (FICLONE). Wrapped in Swift by
   Sources/EdgeSystem/KernelFiles.swift and Spawn.swift; nothing else calls these. */

/* copy_file_range(2): copy `length` bytes inside the kernel; the offsets advance. */
ssize_t edgekit_copy_file_range(int in, long long *in_offset, int out, long long *out_offset, size_t length);

/* ioctl(FICLONE): share all blocks of `source` with `destination` (reflink) on filesystems that
   can (btrfs, XFS, bcachefs); -1 elsewhere (ext4). */
int edgekit_reflink(int destination, int source);

/* A pseudo-terminal sized `columns` wide: returns the controlling side and stores the terminal
   side in *terminal; -1 when the system has no pseudo-terminals. */
int edgekit_open_pty(int *terminal, unsigned short columns);
/* pipe2(O_CLOEXEC): a pipe neither of whose ends leaks into a program another thread starts. */
int edgekit_pipe_cloexec(int fds[2]);

/* posix_spawn_file_actions_addclosefrom_np (glibc 2.34): `actions`, a posix_spawn_file_actions_t,
   closes every descriptor from `from` up in the child. */
int edgekit_spawn_closefrom(void *actions, int from);

/* zstd decompression from libzstd.so.1, loaded on first use (dlopen): the agent links no zstd (its
   aarch64 build has no zstd headers), and every image has libzstd1 (systemd needs it). Wrapped by
   Sources/EdgeSystem/ZstdDecoder.swift. edgekit_zstd_open returns a stream, or NULL with a reason in
   *error (library missing, out of memory). */
void *edgekit_zstd_open(const char **error);
/* Decodes from input[*input_used, input_size) into output[0, output_size): advances *input_used,
   sets *output_made. Returns 0 when a frame is complete and flushed, 1 when more is to come, -1 on
   corrupt input with zstd's reason in *error. */
int edgekit_zstd_decode(void *stream, const void *input, size_t input_size, size_t *input_used,
                        void *output, size_t output_size, size_t *output_made, const char **error);
void edgekit_zstd_close(void *stream);
#endif
