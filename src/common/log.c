/*
 * log.c — JSON-lines logging for Cloud Logging (see log.h for the format).
 *
 * A line is assembled in a TRB_LOG_LINE_MAX stack buffer by a small writer
 * that never goes past `limit`; the bytes after `limit` are kept for the
 * `,"truncated":true}\n` tail, so a truncated line still closes cleanly.
 */
#include "src/common/log.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Room kept after `limit` for the truncation marker, "}\n" and a NUL. */
#define TAIL_RESERVE 32
static const char truncated_marker[] = ",\"truncated\":true";

/* Minimum level written; relaxed atomics (a stale read only mis-filters one
 * line while the level changes). */
static atomic_int min_level = TRB_LOG_INFO;

/* The sink. Readers (every log call) hold sink_lock shared while they call
 * the sink; trb_log_set_sink holds it exclusively. */
static pthread_rwlock_t sink_lock = PTHREAD_RWLOCK_INITIALIZER;
static trb_log_sink_cb sink_cb;  /* guarded by sink_lock; NULL = stderr */
static void *sink_user;          /* guarded by sink_lock */

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};

/* ---------------------------------------------------------------- levels */

static trb_log_level_t clamp_level(trb_log_level_t level) {
  if ((int)level < TRB_LOG_DEBUG) return TRB_LOG_DEBUG;
  if ((int)level > TRB_LOG_ERROR) return TRB_LOG_ERROR;
  return level;
}

void trb_log_set_level(trb_log_level_t level) {
  atomic_store_explicit(&min_level, (int)clamp_level(level), memory_order_relaxed);
}

trb_log_level_t trb_log_get_level(void) {
  return (trb_log_level_t)atomic_load_explicit(&min_level, memory_order_relaxed);
}

bool trb_log_enabled(trb_log_level_t level) {
  return (int)level >= atomic_load_explicit(&min_level, memory_order_relaxed);
}

const char *trb_log_level_name(trb_log_level_t level) {
  if ((int)level < TRB_LOG_DEBUG || (int)level > TRB_LOG_ERROR) return "ERROR";
  return level_names[level];
}

bool trb_log_level_parse(const char *s, trb_log_level_t *out) {
  static const struct {
    const char *name;
    trb_log_level_t level;
  } names[] = {
      {"debug", TRB_LOG_DEBUG},     {"info", TRB_LOG_INFO},
      {"warning", TRB_LOG_WARNING}, {"warn", TRB_LOG_WARNING},
      {"error", TRB_LOG_ERROR},
  };
  if (s == NULL) return false;
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    if (strcasecmp(s, names[i].name) == 0) {
      *out = names[i].level;
      return true;
    }
  }
  return false;
}

grpc_status_code trb_log_init_from_env(trb_status_t *st) {
  const char *v = getenv("TRB_LOG_LEVEL");
  trb_log_level_t level;

  if (v == NULL || v[0] == '\0') return trb_status_set(st, GRPC_STATUS_OK, "%s", "");
  if (!trb_log_level_parse(v, &level)) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "env TRB_LOG_LEVEL: unknown log level \"%.64s\" "
                          "(expected debug, info, warning or error)", v);
  }
  trb_log_set_level(level);
  return trb_status_set(st, GRPC_STATUS_OK, "%s", "");
}

/* ------------------------------------------------------------ the writer */

typedef struct {
  char *buf;
  size_t len;
  size_t limit; /* content may not extend past this; the tail goes after */
  bool truncated;
} line_t;

static bool put_raw(line_t *w, const char *s, size_t n) {
  if (w->truncated) return false;
  if (w->len + n > w->limit) {
    w->truncated = true;
    return false;
  }
  memcpy(w->buf + w->len, s, n);
  w->len += n;
  return true;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if p[0] does not
 * start one (RFC 3629: no overlongs, no surrogates, nothing past U+10FFFF). */
static size_t utf8_seq_len(const unsigned char *p, size_t n) {
  unsigned char c = p[0];
  size_t len;

  if (c < 0x80) return 1;
  if (c < 0xC2) return 0;
  len = c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF5 ? 4 : 0;
  if (len == 0 || n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
  }
  if (c == 0xE0 && p[1] < 0xA0) return 0;  /* overlong 3-byte */
  if (c == 0xED && p[1] >= 0xA0) return 0; /* UTF-16 surrogates */
  if (c == 0xF0 && p[1] < 0x90) return 0;  /* overlong 4-byte */
  if (c == 0xF4 && p[1] >= 0x90) return 0; /* above U+10FFFF */
  return len;
}

/*
 * Write `s` (n bytes) as a quoted JSON string. When it does not fit and
 * `partial_ok`, write as many whole characters as fit and close the quote;
 * otherwise write nothing. Returns false if anything was left out.
 */
static bool put_str(line_t *w, const char *s, size_t n, bool partial_ok) {
  static const char hex[] = "0123456789abcdef";
  size_t start = w->len;
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;

  if (w->truncated) return false;
  if (w->len + 2 > w->limit) {
    w->truncated = true;
    return false;
  }
  w->buf[w->len++] = '"';
  while (i < n) {
    char esc[6];
    const char *piece = esc;
    size_t piece_len, consumed;
    unsigned char c = p[i];

    if (c == '"' || c == '\\') {
      esc[0] = '\\', esc[1] = (char)c, piece_len = 2, consumed = 1;
    } else if (c == '\n') {
      esc[0] = '\\', esc[1] = 'n', piece_len = 2, consumed = 1;
    } else if (c == '\r') {
      esc[0] = '\\', esc[1] = 'r', piece_len = 2, consumed = 1;
    } else if (c == '\t') {
      esc[0] = '\\', esc[1] = 't', piece_len = 2, consumed = 1;
    } else if (c < 0x20) {
      memcpy(esc, "\\u00", 4);
      esc[4] = hex[c >> 4], esc[5] = hex[c & 0xF];
      piece_len = 6, consumed = 1;
    } else {
      consumed = utf8_seq_len(p + i, n - i);
      if (consumed == 0) {
        piece = "\\ufffd", piece_len = 6, consumed = 1;
      } else {
        piece = s + i, piece_len = consumed;
      }
    }
    if (w->len + piece_len + 1 > w->limit) { /* +1: the closing quote */
      w->truncated = true;
      if (!partial_ok) {
        w->len = start;
        return false;
      }
      break;
    }
    memcpy(w->buf + w->len, piece, piece_len);
    w->len += piece_len;
    i += consumed;
  }
  w->buf[w->len++] = '"';
  return i == n;
}

/* `,"key":` — all or nothing. */
static bool put_key(line_t *w, const char *key) {
  size_t start = w->len;
  if (put_raw(w, ",", 1) && put_str(w, key, strlen(key), false) && put_raw(w, ":", 1)) {
    return true;
  }
  w->len = start;
  return false;
}

/* A string member; the value may be cut short, the key never. */
static void put_str_member(line_t *w, const char *key, const char *val, size_t n) {
  size_t start = w->len, value_start;
  if (!put_key(w, key)) return;
  value_start = w->len;
  put_str(w, val, n, true);
  if (w->len == value_start) w->len = start; /* not even "" fitted */
}

static void put_raw_member(line_t *w, const char *key, const char *val) {
  size_t start = w->len;
  if (!put_key(w, key) || !put_raw(w, val, strlen(val))) w->len = start;
}

static void format_double(double d, char *out, size_t cap) {
  if (isnan(d)) {
    snprintf(out, cap, "\"NaN\"");
  } else if (isinf(d)) {
    snprintf(out, cap, d > 0 ? "\"Infinity\"" : "\"-Infinity\"");
  } else {
    /* Shortest of %.15g / %.17g that reads back exactly. */
    snprintf(out, cap, "%.15g", d);
    if (strtod(out, NULL) != d) snprintf(out, cap, "%.17g", d);
  }
}

static void put_field(line_t *w, const trb_log_field_t *f) {
  char num[40];
  const char *key = f->key != NULL ? f->key : "";

  switch (f->type) {
    case TRB_LOG_FIELD_STR:
      if (f->v.s == NULL) {
        put_raw_member(w, key, "null");
      } else {
        put_str_member(w, key, f->v.s, strlen(f->v.s));
      }
      break;
    case TRB_LOG_FIELD_INT:
      snprintf(num, sizeof(num), "%" PRId64, f->v.i);
      put_raw_member(w, key, num);
      break;
    case TRB_LOG_FIELD_DBL:
      format_double(f->v.d, num, sizeof(num));
      put_raw_member(w, key, num);
      break;
    case TRB_LOG_FIELD_BOOL:
      put_raw_member(w, key, f->v.b ? "true" : "false");
      break;
    default: /* unknown type: emit null rather than guess */
      put_raw_member(w, key, "null");
      break;
  }
}

static void put_source_location(line_t *w, const char *file, int line) {
  char num[24];
  size_t start = w->len;

  snprintf(num, sizeof(num), "%d", line);
  if (put_key(w, "logging.googleapis.com/sourceLocation") &&
      put_raw(w, "{\"file\":", 8) &&
      put_str(w, file != NULL ? file : "", file != NULL ? strlen(file) : 0, false) &&
      put_raw(w, ",\"line\":", 8) && put_str(w, num, strlen(num), false) &&
      put_raw(w, "}", 1)) {
    return;
  }
  w->len = start;
}

/* RFC 3339 UTC with microseconds, quoted: "2026-11-20T23:11:26.123456Z" */
static void format_time(char *out, size_t cap) {
  int64_t us = trb_clock_wall_us();
  time_t secs = (time_t)(us / 1000000);
  struct tm tm;
  size_t n;

  gmtime_r(&secs, &tm);
  out[0] = '"';
  n = 1 + strftime(out + 1, cap - 1, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out + n, cap - n, ".%06dZ\"", (int)(us % 1000000));
}

/* Drop a multi-byte sequence cut off at the end of a truncated message. */
static size_t trim_partial_utf8(const char *s, size_t n) {
  size_t back = 0;
  while (back < 3 && back < n && ((unsigned char)s[n - 1 - back] & 0xC0) == 0x80) back++;
  if (back < n) {
    unsigned char lead = (unsigned char)s[n - 1 - back];
    size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (want > back + 1) return n - 1 - back;
  }
  return n;
}

static void write_stderr(const char *p, size_t n) {
  while (n > 0) {
    ssize_t k = write(STDERR_FILENO, p, n);
    if (k < 0) {
      if (errno == EINTR) continue;
      return; /* nowhere left to report it */
    }
    p += k;
    n -= (size_t)k;
  }
}

void trb_log_write(trb_log_level_t level, const char *component,
                   const char *file, int line, const trb_log_field_t *fields,
                   size_t n_fields, const char *fmt, ...) {
  char buf[TRB_LOG_LINE_MAX];
  char msg[TRB_LOG_LINE_MAX];
  char ts[40];
  line_t w = {buf, 0, sizeof(buf) - TAIL_RESERVE, false};
  va_list ap;
  int msg_len;
  size_t mlen;

  level = clamp_level(level);
  va_start(ap, fmt);
  msg_len = vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (msg_len < 0) msg_len = 0;
  mlen = (size_t)msg_len;
  if (mlen >= sizeof(msg)) mlen = trim_partial_utf8(msg, sizeof(msg) - 1);

  format_time(ts, sizeof(ts));
  put_raw(&w, "{\"severity\":", 12);
  put_str(&w, level_names[level], strlen(level_names[level]), false);
  put_raw_member(&w, "time", ts);
  put_str_member(&w, "component", component != NULL ? component : "",
                 component != NULL ? strlen(component) : 0);
  put_source_location(&w, file, line);
  put_str_member(&w, "message", msg, mlen);
  if (mlen < (size_t)msg_len) w.truncated = true;
  for (size_t i = 0; i < n_fields && fields != NULL && !w.truncated; i++) {
    put_field(&w, &fields[i]);
  }

  /* The tail always fits: `limit` left TAIL_RESERVE bytes free. */
  if (w.truncated) {
    memcpy(buf + w.len, truncated_marker, sizeof(truncated_marker) - 1);
    w.len += sizeof(truncated_marker) - 1;
  }
  memcpy(buf + w.len, "}\n", 3);
  w.len += 2;

  pthread_rwlock_rdlock(&sink_lock);
  if (sink_cb != NULL) {
    sink_cb(level, buf, w.len, sink_user);
  } else {
    write_stderr(buf, w.len);
  }
  pthread_rwlock_unlock(&sink_lock);
}

void trb_log_set_sink(trb_log_sink_cb cb, void *user) {
  pthread_rwlock_wrlock(&sink_lock);
  sink_cb = cb;
  sink_user = user;
  pthread_rwlock_unlock(&sink_lock);
}

/* ---------------------------------------------------------- rate limiting */

void trb_log_ratelimit_init(trb_log_ratelimit_t *rl, int64_t interval_ms,
                            uint32_t burst) {
  rl->interval_ms = interval_ms;
  rl->burst = burst;
  pthread_mutex_init(&rl->mu, NULL);
  rl->window_start_ms = -1;
  rl->allowed = 0;
  rl->suppressed = 0;
}

bool trb_log_ratelimit_allow(trb_log_ratelimit_t *rl, int64_t now_ms,
                             uint64_t *suppressed) {
  uint32_t burst = rl->burst != 0 ? rl->burst : 1;
  uint64_t refused = 0;
  bool ok;

  if (rl->interval_ms <= 0) { /* limiting disabled; fields are immutable */
    if (suppressed != NULL) *suppressed = 0;
    return true;
  }
  pthread_mutex_lock(&rl->mu);
  if (rl->window_start_ms < 0 || now_ms - rl->window_start_ms >= rl->interval_ms) {
    rl->window_start_ms = now_ms;
    rl->allowed = 0;
  }
  ok = rl->allowed < burst;
  if (ok) {
    rl->allowed++;
    refused = rl->suppressed;
    rl->suppressed = 0;
  } else {
    rl->suppressed++;
  }
  pthread_mutex_unlock(&rl->mu);
  if (ok && suppressed != NULL) *suppressed = refused;
  return ok;
}
