/*
 * wal_recover.c — opening a WAL directory (see wal.h, "Recovery at open"):
 * the DIR/LOCK flock, listing and verifying the segment files (CRC and lsn
 * sequence of every record), truncating a torn tail of the last segment,
 * and replaying the verified records in log order.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "src/common/alloc.h"
#include "src/common/log.h"
#include "src/streamer/wal_frame.h"
#include "src/streamer/wal_internal.h"

static grpc_status_code take_lock(trb_wal_t *w, trb_status_t *st) {
  char path[PATH_MAX];
  snprintf(path, sizeof(path), "%s/LOCK", w->dir);
  w->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (w->lock_fd < 0) return trb_wal_errno_status(st, errno, "open", path);
  if (flock(w->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    if (err != EWOULDBLOCK) return trb_wal_errno_status(st, err, "flock", path);
    char buf[32] = {0};
    ssize_t n = pread(w->lock_fd, buf, sizeof(buf) - 1, 0);
    long pid = n > 0 ? strtol(buf, NULL, 10) : 0;
    return trb_status_set(st, GRPC_STATUS_FAILED_PRECONDITION,
                          "WAL directory %s is locked by pid %ld (another streamer owns it)",
                          w->dir, pid);
  }
  char buf[32];
  int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
  if (ftruncate(w->lock_fd, 0) != 0 || pwrite(w->lock_fd, buf, (size_t)n, 0) != n)
    return trb_wal_errno_status(st, errno, "write", path);
  return GRPC_STATUS_OK;
}

static int cmp_lsn(const void *a, const void *b) {
  trb_wal_lsn_t x = *(const trb_wal_lsn_t *)a, y = *(const trb_wal_lsn_t *)b;
  return x < y ? -1 : x > y;
}

/* First lsns of the segment files in w->dir, sorted. */
static grpc_status_code list_segments(trb_wal_t *w, trb_wal_lsn_t **out, size_t *n,
                                      trb_status_t *st) {
  *out = NULL;
  *n = 0;
  DIR *d = opendir(w->dir);
  if (!d) return trb_wal_errno_status(st, errno, "opendir", w->dir);
  size_t cap = 0;
  struct dirent *e;
  grpc_status_code code = GRPC_STATUS_OK;
  while ((e = readdir(d)) != NULL) {
    const char *nm = e->d_name;
    if (strlen(nm) != TRB_WAL_SEG_NAME_LEN || strncmp(nm, "wal-", 4) != 0 ||
        strcmp(nm + 24, ".log") != 0)
      continue;
    bool digits = true;
    for (int i = 4; i < 24; i++) digits = digits && nm[i] >= '0' && nm[i] <= '9';
    if (!digits) continue;
    if (*n == cap) {
      cap = cap ? cap * 2 : 16;
      trb_wal_lsn_t *a = (trb_wal_lsn_t *)trb_realloc(*out, cap * sizeof(*a));
      if (!a) {
        code = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "WAL: out of memory");
        break;
      }
      *out = a;
    }
    (*out)[(*n)++] = strtoull(nm + 4, NULL, 10);
  }
  closedir(d);
  if (code == GRPC_STATUS_OK && *n > 1) qsort(*out, *n, sizeof(**out), cmp_lsn);
  return code;
}

/* Map a segment file; *base NULL for an empty file. */
static grpc_status_code map_segment(const char *path, bool writable, int *fd, uint8_t **base,
                                    size_t *size, trb_status_t *st) {
  *base = NULL;
  *size = 0;
  *fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  if (*fd < 0) return trb_wal_errno_status(st, errno, "open", path);
  struct stat sb;
  if (fstat(*fd, &sb) != 0) return trb_wal_errno_status(st, errno, "stat", path);
  *size = (size_t)sb.st_size;
  if (*size == 0) return GRPC_STATUS_OK;
  void *m = mmap(NULL, *size, PROT_READ, MAP_PRIVATE, *fd, 0);
  if (m == MAP_FAILED) return trb_wal_errno_status(st, errno, "mmap", path);
  *base = (uint8_t *)m;
  return GRPC_STATUS_OK;
}

static void unmap_segment(int fd, uint8_t *base, size_t size) {
  if (base) munmap(base, size);
  if (fd >= 0) close(fd);
}

/* Verify one segment file and add it to the table; the tail of the last
 * one is truncated at its first bad record. `*expect` is the lsn the first
 * record must carry and becomes the lsn after the last. */
static grpc_status_code verify_segment(trb_wal_t *w, trb_wal_lsn_t first, bool last,
                                       trb_wal_lsn_t *expect, trb_status_t *st) {
  char path[PATH_MAX], name[64];
  trb_wal_seg_path(w, first, path, sizeof(path));
  trb_wal_seg_name(first, name, sizeof(name));
  /* DATA_LOSS messages put the segment and offset first: a status message
   * holds 255 bytes and the directory may be long. */
  if (first == 0 || (*expect != 0 && first != *expect))
    return trb_status_set(st, GRPC_STATUS_DATA_LOSS,
                          "WAL segment %s offset 0: starts at lsn %" PRIu64 ", expected %" PRIu64
                          " (a segment is missing) in %s",
                          name, (uint64_t)first, (uint64_t)*expect, w->dir);
  int fd;
  uint8_t *base;
  size_t size;
  grpc_status_code code = map_segment(path, last, &fd, &base, &size, st);
  size_t off = 0;
  uint64_t n = 0;
  trb_wal_lsn_t next = first;
  while (code == GRPC_STATUS_OK && off < size) {
    trb_wal_frame_t f;
    trb_wal_frame_result_t r = trb_wal_frame_decode(base + off, size - off, true, &f);
    if (r == TRB_WAL_FRAME_OK && f.lsn != next) {
      code = trb_status_set(st, GRPC_STATUS_DATA_LOSS,
                            "WAL segment %s offset %zu: record has lsn %" PRIu64
                            ", expected %" PRIu64 " in %s",
                            name, off, (uint64_t)f.lsn, (uint64_t)next, w->dir);
      break;
    }
    if (r == TRB_WAL_FRAME_OK) {
      off += f.frame_bytes;
      n++;
      next++;
      continue;
    }
    const char *what = r == TRB_WAL_FRAME_SHORT ? "truncated" : "corrupt";
    if (!last) {
      code = trb_status_set(st, GRPC_STATUS_DATA_LOSS,
                            "WAL segment %s offset %zu: %s record (lsn %" PRIu64
                            " expected) in %s",
                            name, off, what, (uint64_t)next, w->dir);
      break;
    }
    trb_log_field_t fields[] = {TRB_LOG_STR("file", path), TRB_LOG_INT("offset", off),
                                TRB_LOG_INT("dropped_bytes", size - off)};
    TRB_LOGF(TRB_LOG_WARNING, "wal", fields, 3,
             "WAL %s offset %zu: %s record at the tail of the last segment (crash during a "
             "write); truncating %zu bytes",
             path, off, what, size - off);
    if (ftruncate(fd, (off_t)off) != 0) {
      code = trb_wal_errno_status(st, errno, "truncate", path);
    } else if (w->sync == TRB_WAL_SYNC_FSYNC && fdatasync(fd) != 0) {
      code = trb_wal_errno_status(st, errno, "fdatasync", path);
    }
    break;
  }
  unmap_segment(fd, base, size);
  if (code != GRPC_STATUS_OK) return code;
  trb_wal_seg_t *s = trb_wal_seg_new(first, n, off);
  if (!s || !trb_wal_segs_push(w, s)) {
    trb_wal_seg_free(s);
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "WAL: out of memory");
  }
  w->live_bytes += off;
  w->unreleased += n;
  *expect = next;
  return GRPC_STATUS_OK;
}

/* Call `replay` for every record of the verified segments. */
static grpc_status_code replay_all(trb_wal_t *w, trb_wal_replay_cb replay, void *user,
                                   trb_status_t *st) {
  for (size_t i = 0; i < w->nsegs; i++) {
    const trb_wal_seg_t *s = w->segs[i];
    char path[PATH_MAX];
    trb_wal_seg_path(w, s->first_lsn, path, sizeof(path));
    int fd;
    uint8_t *base;
    size_t size;
    grpc_status_code code = map_segment(path, false, &fd, &base, &size, st);
    if (code == GRPC_STATUS_OK && size < s->bytes)
      code = trb_status_set(st, GRPC_STATUS_DATA_LOSS, "WAL %s shrank during open", path);
    size_t off = 0;
    while (code == GRPC_STATUS_OK && off < s->bytes) {
      trb_wal_frame_t f;
      if (trb_wal_frame_decode(base + off, s->bytes - off, false, &f) != TRB_WAL_FRAME_OK) {
        code = trb_status_set(st, GRPC_STATUS_DATA_LOSS, "WAL %s offset %zu changed during open",
                              path, off);
        break;
      }
      replay(user, f.lsn, f.type, f.payload, f.len);
      off += f.frame_bytes;
    }
    unmap_segment(fd, base, size);
    if (code != GRPC_STATUS_OK) return code;
  }
  return GRPC_STATUS_OK;
}

grpc_status_code trb_wal_recover(trb_wal_t *w, trb_wal_replay_cb replay, void *user,
                                   trb_status_t *st) {
  if (mkdir(w->dir, 0755) != 0 && errno != EEXIST) return trb_wal_errno_status(st, errno, "mkdir", w->dir);
  w->dir_fd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (w->dir_fd < 0) return trb_wal_errno_status(st, errno, "open", w->dir);
  grpc_status_code code = take_lock(w, st);
  if (code != GRPC_STATUS_OK) return code;

  trb_wal_lsn_t *firsts;
  size_t n;
  code = list_segments(w, &firsts, &n, st);
  trb_wal_lsn_t expect = 0;
  for (size_t i = 0; code == GRPC_STATUS_OK && i < n; i++)
    code = verify_segment(w, firsts[i], i + 1 == n, &expect, st);
  trb_free(firsts);
  if (code != GRPC_STATUS_OK) return code;

  char path[PATH_MAX];
  if (w->nsegs == 0) {
    trb_wal_seg_t *s = trb_wal_seg_new(1, 0, 0);
    if (!s || !trb_wal_segs_push(w, s)) {
      trb_wal_seg_free(s);
      return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "WAL: out of memory");
    }
    expect = 1;
    trb_wal_seg_path(w, 1, path, sizeof(path));
    w->cur_fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (w->cur_fd < 0) return trb_wal_errno_status(st, errno, "create", path);
    int err = trb_wal_sync_dir(w);
    if (err != 0) return trb_wal_errno_status(st, err, "fsync", w->dir);
  } else {
    trb_wal_seg_path(w, w->segs[w->nsegs - 1]->first_lsn, path, sizeof(path));
    w->cur_fd = open(path, O_WRONLY | O_CLOEXEC);
    if (w->cur_fd < 0) return trb_wal_errno_status(st, errno, "open", path);
    if (lseek(w->cur_fd, 0, SEEK_END) < 0) return trb_wal_errno_status(st, errno, "seek", path);
  }
  w->cur_first = w->segs[w->nsegs - 1]->first_lsn;
  w->next_lsn = expect;
  if (replay) return replay_all(w, replay, user, st);
  return GRPC_STATUS_OK;
}
