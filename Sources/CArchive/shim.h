#ifndef EDGEKIT_CARCHIVE_SHIM_H
#define EDGEKIT_CARCHIVE_SHIM_H
#include <archive.h>
#include <archive_entry.h>
#include <zstd.h>

/* Swift cannot import these macros as typed values; expose them with a prefix. */
static inline unsigned int edgekit_ae_ifreg(void) { return AE_IFREG; }
static inline unsigned int edgekit_ae_ifdir(void) { return AE_IFDIR; }
static inline unsigned int edgekit_ae_iflnk(void) { return AE_IFLNK; }
static inline unsigned int edgekit_ae_ifchr(void) { return AE_IFCHR; }
static inline unsigned int edgekit_ae_ifblk(void) { return AE_IFBLK; }
static inline unsigned int edgekit_ae_ififo(void) { return AE_IFIFO; }
static inline int edgekit_archive_ok(void) { return ARCHIVE_OK; }
static inline int edgekit_archive_warn(void) { return ARCHIVE_WARN; }
static inline int edgekit_archive_eof(void) { return ARCHIVE_EOF; }
static inline int edgekit_archive_format_pax_restricted(void) { return ARCHIVE_FORMAT_TAR_PAX_RESTRICTED; }
static inline size_t edgekit_zstd_is_error(size_t code) { return ZSTD_isError(code); }

#endif
