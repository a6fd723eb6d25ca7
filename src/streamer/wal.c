/*
 * wal.c — the write-ahead log (see wal.h): appends queued to one writer
 * thread (group commit), release bookkeeping and prefix compaction, open and
 * close. Recovery at open is in wal_recover.c.
 *
 * Locking: one mutex `mu` guards the queue, the segment table, the counters
 * and the flags. Payloads are copied and checksummed before taking it; the
 * writer thread does all file I/O without it.
 */
#include "src/streamer/wal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "src/common/alloc.h"
#include "src/common/log.h"
#include "src/streamer/wal_frame.h"
#include "src/streamer/wal_internal.h"

#define DEFAULT_SEGMENT_BYTES ((size_t)64 * 1024 * 1024)
#define WRITEV_MAX 1024 /* iovecs per writev(2) (IOV_MAX on Linux) */

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void trb_wal_seg_name(trb_wal_lsn_t first, char *buf, size_t cap) {
  snprintf(buf, cap, "wal-%020" PRIu64 ".log", (uint64_t)first);
}

void trb_wal_seg_path(const trb_wal_t *w, trb_wal_lsn_t first, char *buf, size_t cap) {
  snprintf(buf, cap, "%s/wal-%020" PRIu64 ".log", w->dir, (uint64_t)first);
}

grpc_status_code trb_wal_errno_status(trb_status_t *st, int err, const char *what,
                                     const char *path) {
  grpc_status_code code = trb_status_from_errno(err);
  if (code == GRPC_STATUS_OK) code = GRPC_STATUS_INTERNAL;
  return trb_status_set(st, code, "WAL %s failed: %s: %s", what, strerror(err), path);
}

/* ---- segment table (under mu) ---------------------------------------- */

trb_wal_seg_t *trb_wal_seg_new(trb_wal_lsn_t first, uint64_t n_records, uint64_t bytes) {
  trb_wal_seg_t *s = (trb_wal_seg_t *)trb_calloc(1, sizeof(*s));
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

void trb_wal_seg_free(trb_wal_seg_t *s) {
  if (!s) return;
  trb_free(s->released);
  trb_free(s);
}

/* Room for `n` bits in s->released; false on allocation failure. */
static bool seg_reserve(trb_wal_seg_t *s, uint64_t n) {
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

bool trb_wal_segs_push(trb_wal_t *w, trb_wal_seg_t *s) {
  if (w->nsegs == w->segcap) {
    size_t cap = w->segcap ? w->segcap * 2 : 16;
    trb_wal_seg_t **n = (trb_wal_seg_t **)trb_realloc(w->segs, cap * sizeof(*n));
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
  const trb_wal_seg_t *s = w->segs[lo - 1];
  if (lsn - s->first_lsn >= s->n_records) return -1;
  return (long)(lo - 1);
}

/* Drop fully released segments from the front (never the current one) and
 * hand their files to the writer for deletion. */
static void compact(trb_wal_t *w) {
  bool any = false;
  while (w->nsegs > 1 && w->segs[0]->n_released == w->segs[0]->n_records) {
    trb_wal_seg_t *s = w->segs[0];
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
    trb_wal_seg_free(s);
    any = true;
  }
  if (any) pthread_cond_signal(&w->cv);
}

/* Number of dead segments whose files the writer has moved past. */
static size_t deletable(const trb_wal_t *w) {
  size_t n = 0;
  if (w->delete_failed) return 0;
  while (n < w->ndead && w->dead[n] < w->cur_first) n++;
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
  char name[64];
  trb_wal_seg_name(seg, name, sizeof(name));
  grpc_status_code code = GRPC_STATUS_INTERNAL;
  if (err == ENOSPC || err == EDQUOT) code = GRPC_STATUS_RESOURCE_EXHAUSTED;
  if (strcmp(what, "fdatasync") == 0) code = GRPC_STATUS_DATA_LOSS;
  /* Short facts first: a status message holds 255 bytes and dirs are long. */
  return trb_status_set(st, code, "WAL %s failed: %s: segment %s in %s", what, strerror(err),
                        name, w->dir);
}

int trb_wal_sync_dir(trb_wal_t *w) {
  if (w->sync != TRB_WAL_SYNC_FSYNC) return 0;
  return fsync(w->dir_fd) == 0 ? 0 : errno;
}

/* Write one group to the segment files; OK or the failure. */
static grpc_status_code write_group(trb_wal_t *w, trb_wal_rec_t *batch, uint64_t *written,
                                    trb_status_t *st) {
  struct iovec iov[WRITEV_MAX];
  int n = 0, err;
  bool fsync_mode = w->sync == TRB_WAL_SYNC_FSYNC;
  for (trb_wal_rec_t *r = batch; r; r = r->next) {
    if (r->starts_segment) {
      if ((err = writev_all(w->cur_fd, iov, n)) != 0)
        return write_fail(w, st, err, "write", w->cur_first);
      n = 0;
      if (fsync_mode && fdatasync(w->cur_fd) != 0)
        return write_fail(w, st, errno, "fdatasync", w->cur_first);
      char path[PATH_MAX];
      trb_wal_seg_path(w, r->lsn, path, sizeof(path));
      int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd < 0) return write_fail(w, st, errno, "create", r->lsn);
      close(w->cur_fd);
      w->cur_fd = fd;
      pthread_mutex_lock(&w->mu);
      w->cur_first = r->lsn;
      pthread_mutex_unlock(&w->mu);
      if ((err = trb_wal_sync_dir(w)) != 0) return write_fail(w, st, err, "fsync directory of", r->lsn);
    }
    if (n + 1 + r->n_lent > WRITEV_MAX) {
      if ((err = writev_all(w->cur_fd, iov, n)) != 0)
        return write_fail(w, st, err, "write", w->cur_first);
      n = 0;
    }
    iov[n].iov_base = r->frame;
    iov[n].iov_len = r->own_bytes;
    n++;
    for (int i = 0; i < r->n_lent; i++) iov[n++] = r->lent[i];
    *written += r->frame_bytes;
  }
  if ((err = writev_all(w->cur_fd, iov, n)) != 0)
    return write_fail(w, st, err, "write", w->cur_first);
  if (fsync_mode && fdatasync(w->cur_fd) != 0)
    return write_fail(w, st, errno, "fdatasync", w->cur_first);
  return GRPC_STATUS_OK;
}

/* Delete the files of compacted segments the writer has moved past. */
static void delete_dead(trb_wal_t *w) {
  /* w->dead is in ascending lsn order and the deletable entries are a
   * prefix of it. Files go strictly oldest first (and in FSYNC mode each
   * unlink is made durable before the next), so a crash at any moment
   * leaves a contiguous run of segments: recovery treats a hole as
   * DATA_LOSS. */
  trb_wal_lsn_t todo[64];
  size_t n = 0;
  pthread_mutex_lock(&w->mu);
  while (n < 64 && n < w->ndead && w->dead[n] < w->cur_first && !w->delete_failed) {
    todo[n] = w->dead[n];
    n++;
  }
  pthread_mutex_unlock(&w->mu);
  if (n == 0) return;
  size_t done = 0;
  for (; done < n; done++) {
    char path[PATH_MAX];
    trb_wal_seg_path(w, todo[done], path, sizeof(path));
    int err = unlink(path) != 0 && errno != ENOENT ? errno : 0;
    if (err == 0) err = trb_wal_sync_dir(w);
    if (err != 0) {
      TRB_LOG(TRB_LOG_ERROR, "wal",
              "WAL cannot delete compacted segment %s: %s; compaction stops until the WAL is "
              "reopened (its records will be replayed again)",
              path, strerror(err));
      break;
    }
  }
  pthread_mutex_lock(&w->mu);
  if (done < n) w->delete_failed = true;
  if (done > 0) {
    memmove(w->dead, w->dead + done, (w->ndead - done) * sizeof(*w->dead));
    w->ndead -= done;
  }
  pthread_mutex_unlock(&w->mu);
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
    trb_wal_rec_t *batch = w->qhead;
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
      for (trb_wal_rec_t *r = batch, *next; r; r = next) {
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
  return trb_wal_appendv_lent(w, type, iov, iovcnt, 0, cb, user, lsn, st);
}

grpc_status_code trb_wal_appendv_lent(trb_wal_t *w, uint8_t type, const struct iovec *iov,
                                      int iovcnt, int n_lent, trb_wal_done_cb cb, void *user,
                                      trb_wal_lsn_t *lsn, trb_status_t *st) {
  if (type == 0) return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT, "WAL record type 0");
  if (iovcnt < 0 || (iovcnt > 0 && !iov))
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT, "WAL append: bad iovec");
  if (n_lent < 0 || n_lent > TRB_WAL_MAX_LENT || n_lent > iovcnt || (n_lent > 0 && !cb))
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "WAL append: bad lent buffers (%d, callback %s)", n_lent,
                          cb ? "set" : "missing");
  int n_own = iovcnt - n_lent;
  size_t len = 0, own = 0;
  for (int i = 0; i < iovcnt; i++) {
    if (iov[i].iov_len > TRB_WAL_FRAME_MAX_PAYLOAD - len)
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "WAL record larger than %zu bytes", TRB_WAL_FRAME_MAX_PAYLOAD);
    len += iov[i].iov_len;
    if (i < n_own) own += iov[i].iov_len;
  }
  size_t fb = TRB_WAL_FRAME_HEADER_BYTES + len;
  size_t ob = TRB_WAL_FRAME_HEADER_BYTES + own;
  trb_wal_rec_t *r = (trb_wal_rec_t *)trb_malloc(sizeof(trb_wal_rec_t) + ob);
  if (!r)
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "WAL: out of memory for %zu bytes",
                          ob);
  uint8_t *p = r->frame + TRB_WAL_FRAME_HEADER_BYTES;
  for (int i = 0; i < n_own; i++) {
    if (iov[i].iov_len) memcpy(p, iov[i].iov_base, iov[i].iov_len);
    p += iov[i].iov_len;
  }
  /* The checksum runs over the payload in order: the copied part, then the
   * lent buffers where they are. */
  uint32_t crc = trb_wal_crc32c(0, r->frame + TRB_WAL_FRAME_HEADER_BYTES, own);
  r->n_lent = 0;
  for (int i = n_own; i < iovcnt; i++) {
    if (!iov[i].iov_len) continue;
    crc = trb_wal_crc32c(crc, iov[i].iov_base, iov[i].iov_len);
    r->lent[r->n_lent++] = iov[i];
  }
  r->next = NULL;
  r->cb = cb;
  r->user = user;
  r->frame_bytes = fb;
  r->own_bytes = ob;
  r->starts_segment = false;

  grpc_status_code code = GRPC_STATUS_OK;
  pthread_mutex_lock(&w->mu);
  trb_wal_seg_t *tail = w->segs[w->nsegs - 1];
  bool fully_released = tail->n_records > 0 && tail->n_released == tail->n_records;
  bool over = w->max_bytes && w->live_bytes + fb > w->max_bytes;
  bool roll = (tail->n_records > 0 && tail->bytes + fb > w->seg_bytes) ||
              (over && w->nsegs == 1 && fully_released);
  uint64_t freed = (roll && w->nsegs == 1 && fully_released) ? tail->bytes : 0;
  trb_wal_seg_t *ns = NULL;
  if (w->closing || w->broken) {
    code = w->broken ? trb_status_set(st, GRPC_STATUS_FAILED_PRECONDITION, "WAL broken: %s",
                                      w->broken_msg)
                     : trb_status_set(st, GRPC_STATUS_FAILED_PRECONDITION, "WAL %s is closing",
                                      w->dir);
  } else if (w->max_bytes && w->live_bytes - freed + fb > w->max_bytes) {
    code = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                          "WAL full: %" PRIu64 " bytes live of %" PRIu64
                          " (record of %zu bytes; release records to compact)",
                          w->live_bytes, w->max_bytes, fb);
  } else if (roll) {
    ns = trb_wal_seg_new(w->next_lsn, 0, 0);
    if (!ns || !trb_wal_segs_push(w, ns)) {
      trb_wal_seg_free(ns);
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
    trb_wal_seg_t *s = w->segs[i];
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
    const trb_wal_seg_t *s = w->segs[i];
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

grpc_status_code trb_wal_health(trb_wal_t *w, trb_status_t *st) {
  grpc_status_code code = GRPC_STATUS_OK;
  pthread_mutex_lock(&w->mu);
  if (w->broken)
    code = trb_status_set(st, w->broken_code, "WAL broken: %s", w->broken_msg);
  else if (w->closing)
    code = trb_status_set(st, GRPC_STATUS_FAILED_PRECONDITION, "WAL %s is closing", w->dir);
  else
    trb_status_clear(st);
  pthread_mutex_unlock(&w->mu);
  return code;
}

/* ---- open / close ------------------------------------------------------ */

static void wal_free(trb_wal_t *w) {
  if (!w) return;
  for (trb_wal_rec_t *r = w->qhead, *next; r; r = next) {
    next = r->next;
    trb_free(r);
  }
  for (size_t i = 0; i < w->nsegs; i++) trb_wal_seg_free(w->segs[i]);
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
  grpc_status_code code = trb_wal_recover(w, replay, user, st);
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
