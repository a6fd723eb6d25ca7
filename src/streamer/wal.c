/*
 * wal.c — the write-ahead log (see wal.h): directory lock, recovery and
 * replay at open, appends queued to one writer thread (group commit),
 * release bookkeeping and prefix compaction.
 *
 * Locking: one mutex `mu` guards the queue, the segment table, the counters
 * and the flags. Payloads are copied and checksummed before taking it; the
 * writer thread does all file I/O without it.
 */
#include "src/streamer/wal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "src/common/alloc.h"
#include "src/common/log.h"
#include "src/streamer/wal_frame.h"

#define DEFAULT_SEGMENT_BYTES ((size_t)64 * 1024 * 1024)
#define SEG_NAME_LEN 28 /* "wal-" + 20 digits + ".log" */
#define WRITEV_MAX 1024 /* iovecs per writev(2) (IOV_MAX on Linux) */

/* One queued record: the frame (header + payload) follows the struct. */
typedef struct rec_s {
  struct rec_s *next;
  trb_wal_lsn_t lsn;
  trb_wal_done_cb cb;
  void *user;
  size_t frame_bytes;
  bool starts_segment; /* first record of a new segment file */
  uint8_t frame[];
} rec_t;

/* One live segment: records [first_lsn, first_lsn + n_records). */
typedef struct seg_s {
  trb_wal_lsn_t first_lsn;
  uint64_t n_records;
  uint64_t n_released;
  uint64_t bytes;     /* framed bytes, queued or on disk */
  uint64_t *released; /* bitmap, one bit per record; `words` words */
  size_t words;
} seg_t;

struct trb_wal_s {
  char *dir;
  trb_wal_sync_t sync;
  uint64_t seg_bytes;
  uint64_t max_bytes;
  int64_t group_delay_ns;
  int dir_fd;
  int lock_fd;

  pthread_mutex_t mu;
  pthread_cond_t cv; /* the writer waits on it (CLOCK_MONOTONIC) */
  pthread_t writer;
  bool writer_started;

  /* Guarded by mu. */
  rec_t *qhead;
  rec_t **qtail;
  int64_t q_first_ns; /* when the oldest queued record was queued */
  trb_wal_lsn_t next_lsn;
  seg_t **segs; /* oldest first; segs[nsegs-1] is the current segment */
  size_t nsegs, segcap;
  trb_wal_lsn_t *dead; /* compacted segments whose files await deletion */
  size_t ndead, deadcap;
  uint64_t live_bytes, unreleased, records_appended, groups, bytes_written;
  bool closing, broken;
  grpc_status_code broken_code;
  char broken_msg[TRB_STATUS_MSG_MAX];
  trb_wal_lsn_t cur_first; /* first lsn of the file the writer appends to */

  /* Writer thread only (and open/close). */
  int cur_fd;
};

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void seg_path(const trb_wal_t *w, trb_wal_lsn_t first, char *buf, size_t cap) {
  snprintf(buf, cap, "%s/wal-%020" PRIu64 ".log", w->dir, (uint64_t)first);
}

static grpc_status_code errno_status(trb_status_t *st, int err, const char *what,
                                     const char *path) {
  grpc_status_code code = trb_status_from_errno(err);
  if (code == GRPC_STATUS_OK) code = GRPC_STATUS_INTERNAL;
  return trb_status_set(st, code, "WAL %s %s: %s", what, path, strerror(err));
}

/* ---- segment table (under mu) ---------------------------------------- */

static seg_t *seg_new(trb_wal_lsn_t first, uint64_t n_records, uint64_t bytes) {
  seg_t *s = (seg_t *)trb_calloc(1, sizeof(*s));
  if (!s) return NULL;
  size_t words = (size_t)((n_records + 63) / 64);
  if (words < 64) words = 64;
  s->released = (uint64_t *)trb_calloc(words, sizeof(uint64_t));
  if (!s->released) {
    trb_free(s);
    return NULL;
  }
  s->words = words;
  s->first_lsn = first;
  s->n_records = n_records;
  s->bytes = bytes;
  return s;
}

static void seg_free(seg_t *s) {
  if (!s) return;
  trb_free(s->released);
  trb_free(s);
}

/* Room for `n` bits in s->released; false on allocation failure. */
static bool seg_reserve(seg_t *s, uint64_t n) {
  if (n <= (uint64_t)s->words * 64) return true;
  size_t words = s->words * 2;
  while ((uint64_t)words * 64 < n) words *= 2;
  uint64_t *r = (uint64_t *)trb_realloc(s->released, words * sizeof(uint64_t));
  if (!r) return false;
  memset(r + s->words, 0, (words - s->words) * sizeof(uint64_t));
  s->released = r;
  s->words = words;
  return true;
}

static bool segs_push(trb_wal_t *w, seg_t *s) {
  if (w->nsegs == w->segcap) {
    size_t cap = w->segcap ? w->segcap * 2 : 16;
    seg_t **n = (seg_t **)trb_realloc(w->segs, cap * sizeof(*n));
    if (!n) return false;
    w->segs = n;
    w->segcap = cap;
  }
  w->segs[w->nsegs++] = s;
  return true;
}

/* Index of the segment holding `lsn`, or -1. */
static long seg_find(const trb_wal_t *w, trb_wal_lsn_t lsn) {
  size_t lo = 0, hi = w->nsegs;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (w->segs[mid]->first_lsn <= lsn)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == 0) return -1;
  const seg_t *s = w->segs[lo - 1];
  if (lsn - s->first_lsn >= s->n_records) return -1;
  return (long)(lo - 1);
}

/* Drop fully released segments from the front (never the current one) and
 * hand their files to the writer for deletion. */
static void compact(trb_wal_t *w) {
  bool any = false;
  while (w->nsegs > 1 && w->segs[0]->n_released == w->segs[0]->n_records) {
    seg_t *s = w->segs[0];
    if (w->ndead == w->deadcap) {
      size_t cap = w->deadcap ? w->deadcap * 2 : 16;
      trb_wal_lsn_t *d = (trb_wal_lsn_t *)trb_realloc(w->dead, cap * sizeof(*d));
      if (!d) break; /* out of memory: keep the segment live, retry later */
      w->dead = d;
      w->deadcap = cap;
    }
    w->dead[w->ndead++] = s->first_lsn;
    w->live_bytes -= s->bytes;
    memmove(w->segs, w->segs + 1, (w->nsegs - 1) * sizeof(*w->segs));
    w->nsegs--;
    seg_free(s);
    any = true;
  }
  if (any) pthread_cond_signal(&w->cv);
}

/* Number of dead segments whose files the writer has moved past. */
static size_t deletable(const trb_wal_t *w) {
  size_t n = 0;
  for (size_t i = 0; i < w->ndead; i++)
    if (w->dead[i] < w->cur_first) n++;
  return n;
}

/* ---- writer thread ---------------------------------------------------- */

/* Write all `n` iovecs (partial writes continue). 0 or an errno value. */
static int writev_all(int fd, struct iovec *iov, int n) {
  while (n > 0) {
    ssize_t k = writev(fd, iov, n);
    if (k < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    size_t done = (size_t)k;
    while (n > 0 && done >= iov->iov_len) {
      done -= iov->iov_len;
      iov++;
      n--;
    }
    if (n > 0) {
      iov->iov_base = (uint8_t *)iov->iov_base + done;
      iov->iov_len -= done;
    }
  }
  return 0;
}

static grpc_status_code write_fail(trb_wal_t *w, trb_status_t *st, int err, const char *what,
                                   trb_wal_lsn_t seg) {
  char path[PATH_MAX];
  seg_path(w, seg, path, sizeof(path));
  grpc_status_code code = GRPC_STATUS_INTERNAL;
  if (err == ENOSPC || err == EDQUOT) code = GRPC_STATUS_RESOURCE_EXHAUSTED;
  if (strcmp(what, "fdatasync") == 0) code = GRPC_STATUS_DATA_LOSS;
  return trb_status_set(st, code, "WAL %s %s: %s", what, path, strerror(err));
}

static int sync_dir(trb_wal_t *w) {
  if (w->sync != TRB_WAL_SYNC_FSYNC) return 0;
  return fsync(w->dir_fd) == 0 ? 0 : errno;
}

/* Write one group to the segment files; OK or the failure. */
static grpc_status_code write_group(trb_wal_t *w, rec_t *batch, uint64_t *written,
                                    trb_status_t *st) {
  struct iovec iov[WRITEV_MAX];
  int n = 0, err;
  bool fsync_mode = w->sync == TRB_WAL_SYNC_FSYNC;
  for (rec_t *r = batch; r; r = r->next) {
    if (r->starts_segment) {
      if ((err = writev_all(w->cur_fd, iov, n)) != 0)
        return write_fail(w, st, err, "write", w->cur_first);
      n = 0;
      if (fsync_mode && fdatasync(w->cur_fd) != 0)
        return write_fail(w, st, errno, "fdatasync", w->cur_first);
      char path[PATH_MAX];
      seg_path(w, r->lsn, path, sizeof(path));
      int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd < 0) return write_fail(w, st, errno, "create", r->lsn);
      close(w->cur_fd);
      w->cur_fd = fd;
      pthread_mutex_lock(&w->mu);
      w->cur_first = r->lsn;
      pthread_mutex_unlock(&w->mu);
      if ((err = sync_dir(w)) != 0) return write_fail(w, st, err, "fsync directory of", r->lsn);
    }
    iov[n].iov_base = r->frame;
    iov[n].iov_len = r->frame_bytes;
    n++;
    *written += r->frame_bytes;
    if (n == WRITEV_MAX) {
      if ((err = writev_all(w->cur_fd, iov, n)) != 0)
        return write_fail(w, st, err, "write", w->cur_first);
      n = 0;
    }
  }
  if ((err = writev_all(w->cur_fd, iov, n)) != 0)
    return write_fail(w, st, err, "write", w->cur_first);
  if (fsync_mode && fdatasync(w->cur_fd) != 0)
    return write_fail(w, st, errno, "fdatasync", w->cur_first);
  return GRPC_STATUS_OK;
}

/* Delete the files of compacted segments the writer has moved past. */
static void delete_dead(trb_wal_t *w) {
  trb_wal_lsn_t todo[64];
  size_t n = 0;
  pthread_mutex_lock(&w->mu);
  for (size_t i = 0; i < w->ndead && n < 64;) {
    if (w->dead[i] < w->cur_first) {
      todo[n++] = w->dead[i];
      w->dead[i] = w->dead[--w->ndead];
    } else {
      i++;
    }
  }
  pthread_mutex_unlock(&w->mu);
  if (n == 0) return;
  for (size_t i = 0; i < n; i++) {
    char path[PATH_MAX];
    seg_path(w, todo[i], path, sizeof(path));
    if (unlink(path) != 0 && errno != ENOENT)
      TRB_LOG(TRB_LOG_WARNING, "wal", "WAL cannot delete compacted segment %s: %s", path,
              strerror(errno));
  }
  int err = sync_dir(w);
  if (err != 0)
    TRB_LOG(TRB_LOG_WARNING, "wal", "WAL fsync directory %s after deleting segments: %s",
            w->dir, strerror(err));
}

static void wait_group_delay(trb_wal_t *w) {
  if (w->group_delay_ns <= 0) return;
  int64_t until = w->q_first_ns + w->group_delay_ns;
  while (!w->closing) {
    int64_t now = mono_ns();
    if (now >= until) break;
    struct timespec ts = {(time_t)(until / 1000000000), (long)(until % 1000000000)};
    pthread_cond_timedwait(&w->cv, &w->mu, &ts);
  }
}

static void *writer_main(void *arg) {
  trb_wal_t *w = (trb_wal_t *)arg;
  pthread_mutex_lock(&w->mu);
  for (;;) {
    while (!w->qhead && !w->closing && deletable(w) == 0) pthread_cond_wait(&w->cv, &w->mu);
    if (!w->qhead && deletable(w) == 0) break; /* closing and drained */
    if (w->qhead) wait_group_delay(w);
    rec_t *batch = w->qhead;
    w->qhead = NULL;
    w->qtail = &w->qhead;
    bool broken = w->broken;
    grpc_status_code code = w->broken_code;
    trb_status_t st;
    trb_status_clear(&st);
    if (broken) trb_status_set(&st, code, "%s", w->broken_msg);
    pthread_mutex_unlock(&w->mu);

    if (batch) {
      uint64_t written = 0;
      if (!broken) {
        code = write_group(w, batch, &written, &st);
        if (code != GRPC_STATUS_OK)
          TRB_LOG(TRB_LOG_ERROR, "wal", "WAL broken: %s: %s", trb_status_code_name(code),
                  st.msg);
      }
      pthread_mutex_lock(&w->mu);
      w->bytes_written += written;
      if (!broken) w->groups++;
      if (code != GRPC_STATUS_OK && !w->broken) {
        w->broken = true;
        w->broken_code = code;
        snprintf(w->broken_msg, sizeof(w->broken_msg), "%s", st.msg);
      }
      pthread_mutex_unlock(&w->mu);
      for (rec_t *r = batch, *next; r; r = next) {
        next = r->next;
        if (r->cb) r->cb(r->user, r->lsn, code, code == GRPC_STATUS_OK ? "" : st.msg);
        trb_free(r);
      }
    }
    delete_dead(w);
    pthread_mutex_lock(&w->mu);
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

/* ---- append / release / stats ----------------------------------------- */

grpc_status_code trb_wal_appendv(trb_wal_t *w, uint8_t type, const struct iovec *iov, int iovcnt,
                                 trb_wal_done_cb cb, void *user, trb_wal_lsn_t *lsn,
                                 trb_status_t *st) {
  if (type == 0) return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT, "WAL record type 0");
  if (iovcnt < 0 || (iovcnt > 0 && !iov))
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT, "WAL append: bad iovec");
  size_t len = 0;
  for (int i = 0; i < iovcnt; i++) {
    if (iov[i].iov_len > TRB_WAL_FRAME_MAX_PAYLOAD - len)
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "WAL record larger than %zu bytes", TRB_WAL_FRAME_MAX_PAYLOAD);
    len += iov[i].iov_len;
  }
  size_t fb = TRB_WAL_FRAME_HEADER_BYTES + len;
  rec_t *r = (rec_t *)trb_malloc(sizeof(rec_t) + fb);
  if (!r)
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "WAL: out of memory for %zu bytes",
                          fb);
  uint8_t *p = r->frame + TRB_WAL_FRAME_HEADER_BYTES;
  for (int i = 0; i < iovcnt; i++) {
    if (iov[i].iov_len) memcpy(p, iov[i].iov_base, iov[i].iov_len);
    p += iov[i].iov_len;
  }
  uint32_t crc = trb_wal_crc32c(0, r->frame + TRB_WAL_FRAME_HEADER_BYTES, len);
  r->next = NULL;
  r->cb = cb;
  r->user = user;
  r->frame_bytes = fb;
  r->starts_segment = false;

  grpc_status_code code = GRPC_STATUS_OK;
  pthread_mutex_lock(&w->mu);
  seg_t *tail = w->segs[w->nsegs - 1];
  bool fully_released = tail->n_records > 0 && tail->n_released == tail->n_records;
  bool over = w->max_bytes && w->live_bytes + fb > w->max_bytes;
  bool roll = (tail->n_records > 0 && tail->bytes + fb > w->seg_bytes) ||
              (over && w->nsegs == 1 && fully_released);
  uint64_t freed = (roll && w->nsegs == 1 && fully_released) ? tail->bytes : 0;
  seg_t *ns = NULL;
  if (w->closing || w->broken) {
    code = w->broken ? trb_status_set(st, GRPC_STATUS_FAILED_PRECONDITION, "WAL %s is broken: %s",
                                      w->dir, w->broken_msg)
                     : trb_status_set(st, GRPC_STATUS_FAILED_PRECONDITION, "WAL %s is closing",
                                      w->dir);
  } else if (w->max_bytes && w->live_bytes - freed + fb > w->max_bytes) {
    code = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                          "WAL full: %" PRIu64 " bytes live of %" PRIu64
                          " (record of %zu bytes; release records to compact)",
                          w->live_bytes, w->max_bytes, fb);
  } else if (roll) {
    ns = seg_new(w->next_lsn, 0, 0);
    if (!ns || !segs_push(w, ns)) {
      seg_free(ns);
      code = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "WAL: out of memory");
    } else {
      r->starts_segment = true;
      tail = ns;
    }
  } else if (!seg_reserve(tail, tail->n_records + 1)) {
    code = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "WAL: out of memory");
  }
  if (code != GRPC_STATUS_OK) {
    pthread_mutex_unlock(&w->mu);
    trb_free(r);
    return code;
  }
  r->lsn = w->next_lsn++;
  trb_wal_frame_header(r->frame, type, r->lsn, len, crc);
  tail->n_records++;
  tail->bytes += fb;
  w->live_bytes += fb;
  w->unreleased++;
  w->records_appended++;
  if (roll) compact(w);
  if (!w->qhead) {
    w->q_first_ns = w->group_delay_ns > 0 ? mono_ns() : 0;
    pthread_cond_signal(&w->cv);
  }
  *w->qtail = r;
  w->qtail = &r->next;
  if (lsn) *lsn = r->lsn;
  pthread_mutex_unlock(&w->mu);
  return GRPC_STATUS_OK;
}

grpc_status_code trb_wal_append(trb_wal_t *w, uint8_t type, const void *payload, size_t len,
                                trb_wal_done_cb cb, void *user, trb_wal_lsn_t *lsn,
                                trb_status_t *st) {
  struct iovec one;
  one.iov_base = (void *)payload;
  one.iov_len = len;
  return trb_wal_appendv(w, type, &one, len ? 1 : 0, cb, user, lsn, st);
}

void trb_wal_release(trb_wal_t *w, trb_wal_lsn_t lsn) {
  pthread_mutex_lock(&w->mu);
  long i = seg_find(w, lsn);
  if (i >= 0) {
    seg_t *s = w->segs[i];
    uint64_t off = lsn - s->first_lsn;
    uint64_t bit = (uint64_t)1 << (off % 64);
    if (!(s->released[off / 64] & bit)) {
      s->released[off / 64] |= bit;
      s->n_released++;
      w->unreleased--;
      if (i == 0) compact(w);
    }
  }
  pthread_mutex_unlock(&w->mu);
}

void trb_wal_stats(trb_wal_t *w, trb_wal_stats_t *out) {
  memset(out, 0, sizeof(*out));
  pthread_mutex_lock(&w->mu);
  out->live_bytes = w->live_bytes;
  out->live_segments = w->nsegs;
  out->records_appended = w->records_appended;
  out->groups_committed = w->groups;
  out->bytes_written = w->bytes_written;
  out->unreleased_records = w->unreleased;
  for (size_t i = 0; i < w->nsegs && !out->oldest_unreleased; i++) {
    const seg_t *s = w->segs[i];
    if (s->n_released == s->n_records) continue;
    for (uint64_t k = 0; k < s->n_records; k++) {
      if (k % 64 == 0 && s->released[k / 64] == UINT64_MAX) {
        k += 63;
        continue;
      }
      if (!(s->released[k / 64] & ((uint64_t)1 << (k % 64)))) {
        out->oldest_unreleased = s->first_lsn + k;
        break;
      }
    }
  }
  pthread_mutex_unlock(&w->mu);
}

/* ---- open / close ------------------------------------------------------ */

static void wal_free(trb_wal_t *w) {
  if (!w) return;
  for (rec_t *r = w->qhead, *next; r; r = next) {
    next = r->next;
    trb_free(r);
  }
  for (size_t i = 0; i < w->nsegs; i++) seg_free(w->segs[i]);
  trb_free(w->segs);
  trb_free(w->dead);
  if (w->cur_fd >= 0) close(w->cur_fd);
  if (w->dir_fd >= 0) close(w->dir_fd);
  if (w->lock_fd >= 0) close(w->lock_fd); /* releases the flock */
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  trb_free(w->dir);
  trb_free(w);
}

static grpc_status_code take_lock(trb_wal_t *w, trb_status_t *st) {
  char path[PATH_MAX];
  snprintf(path, sizeof(path), "%s/LOCK", w->dir);
  w->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (w->lock_fd < 0) return errno_status(st, errno, "open", path);
  if (flock(w->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    if (err != EWOULDBLOCK) return errno_status(st, err, "flock", path);
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
    return errno_status(st, errno, "write", path);
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
  if (!d) return errno_status(st, errno, "opendir", w->dir);
  size_t cap = 0;
  struct dirent *e;
  grpc_status_code code = GRPC_STATUS_OK;
  while ((e = readdir(d)) != NULL) {
    const char *nm = e->d_name;
    if (strlen(nm) != SEG_NAME_LEN || strncmp(nm, "wal-", 4) != 0 ||
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
  if (*fd < 0) return errno_status(st, errno, "open", path);
  struct stat sb;
  if (fstat(*fd, &sb) != 0) return errno_status(st, errno, "stat", path);
  *size = (size_t)sb.st_size;
  if (*size == 0) return GRPC_STATUS_OK;
  void *m = mmap(NULL, *size, PROT_READ, MAP_PRIVATE, *fd, 0);
  if (m == MAP_FAILED) return errno_status(st, errno, "mmap", path);
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
  char path[PATH_MAX];
  seg_path(w, first, path, sizeof(path));
  if (first == 0 || (*expect != 0 && first != *expect))
    return trb_status_set(st, GRPC_STATUS_DATA_LOSS,
                          "WAL %s offset 0: segment starts at lsn %" PRIu64
                          ", expected %" PRIu64 " (a segment is missing)",
                          path, (uint64_t)first, (uint64_t)*expect);
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
                            "WAL %s offset %zu: record has lsn %" PRIu64 ", expected %" PRIu64,
                            path, off, (uint64_t)f.lsn, (uint64_t)next);
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
                            "WAL %s offset %zu: %s record (lsn %" PRIu64 " expected)", path, off,
                            what, (uint64_t)next);
      break;
    }
    trb_log_field_t fields[] = {TRB_LOG_STR("file", path), TRB_LOG_INT("offset", off),
                                TRB_LOG_INT("dropped_bytes", size - off)};
    TRB_LOGF(TRB_LOG_WARNING, "wal", fields, 3,
             "WAL %s offset %zu: %s record at the tail of the last segment (crash during a "
             "write); truncating %zu bytes",
             path, off, what, size - off);
    if (ftruncate(fd, (off_t)off) != 0) {
      code = errno_status(st, errno, "truncate", path);
    } else if (w->sync == TRB_WAL_SYNC_FSYNC && fdatasync(fd) != 0) {
      code = errno_status(st, errno, "fdatasync", path);
    }
    break;
  }
  unmap_segment(fd, base, size);
  if (code != GRPC_STATUS_OK) return code;
  seg_t *s = seg_new(first, n, off);
  if (!s || !segs_push(w, s)) {
    seg_free(s);
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
    const seg_t *s = w->segs[i];
    char path[PATH_MAX];
    seg_path(w, s->first_lsn, path, sizeof(path));
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

static grpc_status_code open_files(trb_wal_t *w, trb_wal_replay_cb replay, void *user,
                                   trb_status_t *st) {
  if (mkdir(w->dir, 0755) != 0 && errno != EEXIST) return errno_status(st, errno, "mkdir", w->dir);
  w->dir_fd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (w->dir_fd < 0) return errno_status(st, errno, "open", w->dir);
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
    seg_t *s = seg_new(1, 0, 0);
    if (!s || !segs_push(w, s)) {
      seg_free(s);
      return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "WAL: out of memory");
    }
    expect = 1;
    seg_path(w, 1, path, sizeof(path));
    w->cur_fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (w->cur_fd < 0) return errno_status(st, errno, "create", path);
    int err = sync_dir(w);
    if (err != 0) return errno_status(st, err, "fsync", w->dir);
  } else {
    seg_path(w, w->segs[w->nsegs - 1]->first_lsn, path, sizeof(path));
    w->cur_fd = open(path, O_WRONLY | O_CLOEXEC);
    if (w->cur_fd < 0) return errno_status(st, errno, "open", path);
    if (lseek(w->cur_fd, 0, SEEK_END) < 0) return errno_status(st, errno, "seek", path);
  }
  w->cur_first = w->segs[w->nsegs - 1]->first_lsn;
  w->next_lsn = expect;
  if (replay) return replay_all(w, replay, user, st);
  return GRPC_STATUS_OK;
}

grpc_status_code trb_wal_open(const trb_wal_config_t *cfg, trb_wal_replay_cb replay, void *user,
                              trb_wal_t **out, trb_status_t *st) {
  *out = NULL;
  if (!cfg || !cfg->dir || !cfg->dir[0])
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT, "WAL: no directory configured");
  if (strlen(cfg->dir) > PATH_MAX - 64)
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT, "WAL: directory name too long");
  if (cfg->sync != TRB_WAL_SYNC_FSYNC && cfg->sync != TRB_WAL_SYNC_NONE)
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT, "WAL: unknown sync policy %d",
                          (int)cfg->sync);
  trb_wal_t *w = (trb_wal_t *)trb_calloc(1, sizeof(*w));
  if (!w) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "WAL: out of memory");
  w->dir_fd = w->lock_fd = w->cur_fd = -1;
  pthread_mutex_init(&w->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&w->cv, &ca);
  pthread_condattr_destroy(&ca);
  w->qtail = &w->qhead;
  w->dir = trb_strdup(cfg->dir);
  w->sync = cfg->sync;
  w->max_bytes = cfg->max_bytes;
  w->seg_bytes = cfg->segment_bytes ? cfg->segment_bytes : DEFAULT_SEGMENT_BYTES;
  if (w->max_bytes && w->seg_bytes > w->max_bytes / 4)
    w->seg_bytes = w->max_bytes / 4 ? w->max_bytes / 4 : 1;
  w->group_delay_ns = cfg->max_group_delay_us > 0 ? cfg->max_group_delay_us * 1000 : 0;
  if (!w->dir) {
    wal_free(w);
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "WAL: out of memory");
  }
  grpc_status_code code = open_files(w, replay, user, st);
  if (code == GRPC_STATUS_OK) {
    int err = pthread_create(&w->writer, NULL, writer_main, w);
    if (err != 0)
      code = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                            "WAL: cannot start the writer thread: %s", strerror(err));
    else
      w->writer_started = true;
  }
  if (code != GRPC_STATUS_OK) {
    wal_free(w);
    return code;
  }
  *out = w;
  return GRPC_STATUS_OK;
}

void trb_wal_close(trb_wal_t *w) {
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  w->closing = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  if (w->writer_started) pthread_join(w->writer, NULL);
  wal_free(w);
}
