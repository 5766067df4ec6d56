#ifndef EDGEKIT_CARCHIVE_SHIM_H
#define EDGEKIT_CARCHIVE_SHIM_H
#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

/* Swift cannot import the S_IF* macros as typed values; expose them as functions. */
static inline unsigned int edgekit_archive_mode_regular(void) { return AE_IFREG; }
static inline unsigned int edgekit_archive_mode_directory(void) { return AE_IFDIR; }
static inline unsigned int edgekit_archive_mode_symlink(void) { return AE_IFLNK; }
#endif
