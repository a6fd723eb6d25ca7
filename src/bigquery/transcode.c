/* transcode.c — see transcode.h. */
#include "src/bigquery/transcode.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/bigquery/values.h"
#include "src/common/alloc.h"
#include "src/common/json_scan.h"

#define PATH_MAX_LEN 240
/* Path frames alive at once: one per nesting level (a key of an object or
 * an index of an array), so at most TRB_BQ_JSON_MAX_DEPTH. */
#define MAX_FRAMES (TRB_BQ_JSON_MAX_DEPTH + 2)

/* One step of the JSON path: ".name" (name != NULL) or "[index]". The path
 * text is built from these only when an error is reported. */
typedef struct frame_s {
  const char *name;
  size_t n; /* name bytes, or the array index */
} frame_t;

/* Name lengths of one fields array (find_field): len[i] =
 * strlen(fs[i].name) (UINT32_MAX when longer). Arrays of more than LENS_FIELDS
 * columns, and more than LENS_SLOTS arrays in one row, are searched
 * without it. */
#define LENS_SLOTS 8
#define LENS_FIELDS 64
typedef struct name_lens_s {
  const trb_bq_field_t *fs;
  uint32_t len[LENS_FIELDS];
} name_lens_t;

typedef struct ctx_s {
  const char *base, *p, *end;
  trb_buf_t *out;
  trb_buf_t scratch;
  bool ignore_unknown;
  bool oom;
  int depth;
  trb_status_t *st;
  size_t nframes;
  frame_t frames[MAX_FRAMES];
  /* An unknown key with escapes (decoded into scratch) while its value is
   * skipped: a stable copy for the path (only one is alive at a time). */
  char ukey[PATH_MAX_LEN];
  /* trb_bq_transcode_row_extra: members after the top-level object's. */
  const trb_bq_extra_field_t *extra;
  size_t n_extra;
  /* opts->watch: a top-level key to count (NULL: none). */
  trb_bq_watch_t *watch;
  /* Column name lengths of the field arrays met in this call (the table is
   * borrowed for the call, so a fields pointer names one array throughout):
   * see find_field. Slots are taken in order; nlens of them are live. */
  size_t nlens;
  name_lens_t lens[LENS_SLOTS];
} ctx_t;

/* ---- errors and path ---------------------------------------------------- */

/* The path text of the live frames into `path` (PATH_MAX_LEN + 16 bytes):
 * names longer than what fits in PATH_MAX_LEN become "...". */
static size_t render_path(const ctx_t *c, char *path) {
  size_t plen = 0;
  for (size_t i = 0; i < c->nframes; i++) {
    const frame_t *f = &c->frames[i];
    if (f->name) {
      if (plen + 1 + f->n <= PATH_MAX_LEN) {
        path[plen++] = '.';
        memcpy(path + plen, f->name, f->n);
        plen += f->n;
      } else if (plen + 4 <= PATH_MAX_LEN + 16) {
        memcpy(path + plen, "...", 3);
        plen += 3;
      }
    } else if (plen + 24 <= PATH_MAX_LEN + 16) {
      plen += (size_t)snprintf(path + plen, 24, "[%zu]", f->n);
    }
  }
  return plen;
}

static grpc_status_code fail(ctx_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static grpc_status_code fail(ctx_t *c, const char *fmt, ...) {
  if (c->oom)
    return trb_status_set(c->st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                          "out of memory transcoding a row");
  char msg[200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  char path[PATH_MAX_LEN + 16];
  size_t plen = render_path(c, path);
  return trb_status_set(c->st, GRPC_STATUS_INVALID_ARGUMENT, "$%.*s: %s",
                        (int)plen, path, msg);
}

static grpc_status_code syntax(ctx_t *c, const char *what) {
  if (c->p >= c->end)
    return fail(c, "%s: unexpected end of input at byte %zu", what,
                (size_t)(c->p - c->base));
  unsigned char ch = (unsigned char)*c->p;
  if (ch >= 0x20 && ch < 0x7f)
    return fail(c, "%s: unexpected character '%c' at byte %zu", what, ch,
                (size_t)(c->p - c->base));
  return fail(c, "%s: unexpected byte 0x%02x at byte %zu", what, ch,
              (size_t)(c->p - c->base));
}

/* Push a path frame; returns the frame count to restore (c->nframes = it).
 * `name` must stay valid while the frame is live. */
static inline size_t path_push_name(ctx_t *c, const char *name, size_t n) {
  size_t old = c->nframes;
  if (old < MAX_FRAMES) c->frames[c->nframes++] = (frame_t){name, n};
  return old;
}

static inline size_t path_push_index(ctx_t *c, size_t i) {
  size_t old = c->nframes;
  if (old < MAX_FRAMES) c->frames[c->nframes++] = (frame_t){NULL, i};
  return old;
}

/* ---- output ------------------------------------------------------------- */
/* Writes go straight into c->out->data after one capacity check per value
 * (room); the NUL after the content is written once, when the row is done. */

static inline bool room(ctx_t *c, size_t n) {
  if (c->out->cap - c->out->len > n) return true;
  if (trb_buf_reserve(c->out, n) != 0) {
    c->oom = true;
    return false;
  }
  return true;
}

static inline uint8_t *wptr(ctx_t *c) {
  return (uint8_t *)c->out->data + c->out->len;
}

static inline size_t varint_enc(uint64_t v, uint8_t *b) {
  if (v < 0x80) {
    b[0] = (uint8_t)v;
    return 1;
  }
  size_t n = 0;
  while (v >= 0x80) {
    b[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  b[n++] = (uint8_t)v;
  return n;
}

static inline bool put(ctx_t *c, const void *p, size_t n) {
  if (!room(c, n)) return false;
  if (n) memcpy(wptr(c), p, n);
  c->out->len += n;
  return true;
}

static inline bool put_varint_field(ctx_t *c, uint32_t num, uint64_t v) {
  if (!room(c, 20)) return false;
  uint8_t *w = wptr(c);
  size_t k = varint_enc((uint64_t)num << 3, w);
  k += varint_enc(v, w + k);
  c->out->len += k;
  return true;
}

static inline bool put_bytes_field(ctx_t *c, uint32_t num, const void *p,
                                   size_t n) {
  if (n > SIZE_MAX - 32 || !room(c, n + 20)) {
    c->oom = true;
    return false;
  }
  uint8_t *w = wptr(c);
  size_t k = varint_enc(((uint64_t)num << 3) | 2, w);
  k += varint_enc(n, w + k);
  if (n) memcpy(w + k, p, n);
  c->out->len += k + n;
  return true;
}

static bool put_double_field(ctx_t *c, uint32_t num, double d) {
  uint64_t u;
  memcpy(&u, &d, 8);
  if (!room(c, 18)) return false;
  uint8_t *w = wptr(c);
  size_t k = varint_enc(((uint64_t)num << 3) | 1, w);
  for (int i = 0; i < 8; i++) w[k + (size_t)i] = (uint8_t)(u >> (8 * i));
  c->out->len += k + 8;
  return true;
}

/* Length-delimited field whose size is known only at the end: a one-byte
 * length placeholder, widened (memmove) when the content is >= 128 bytes. */
static bool ld_begin(ctx_t *c, uint32_t num, size_t *start) {
  if (!room(c, 8)) return false;
  uint8_t *w = wptr(c);
  size_t k = varint_enc(((uint64_t)num << 3) | 2, w);
  w[k++] = 0;
  c->out->len += k;
  *start = c->out->len;
  return true;
}

static bool ld_end(ctx_t *c, size_t start) {
  size_t n = c->out->len - start;
  uint8_t b[10];
  size_t k = varint_enc(n, b);
  if (k > 1) {
    if (!room(c, k - 1)) return false;
    memmove(c->out->data + start + k - 1, c->out->data + start, n);
    c->out->len += k - 1;
  }
  memcpy(c->out->data + start - 1, b, k);
  return true;
}

/* ---- JSON reader -------------------------------------------------------- */

/* JSON white space (' ', '\n', '\r', '\t') as bits of a word. */
#define WS_BITS                                                   \
  ((UINT64_C(1) << ' ') | (UINT64_C(1) << '\n') | (UINT64_C(1) << '\r') | \
   (UINT64_C(1) << '\t'))

static inline void ws(ctx_t *c) {
  /* One compare for the usual case, a byte above ' ' (no white space);
   * then one bit test. */
  const char *p = c->p, *end = c->end;
  while (p < end && (unsigned char)*p <= ' ' &&
         (WS_BITS >> (unsigned char)*p & 1))
    p++;
  c->p = p;
}

static bool lit(ctx_t *c, const char *w, size_t n) {
  if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0) return false;
  c->p += n;
  return true;
}

static int hexv(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

static bool hex4(const char *p, uint32_t *out) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    int h = hexv(p[i]);
    if (h < 0) return false;
    v = v << 4 | (uint32_t)h;
  }
  *out = v;
  return true;
}

/* First byte at or after p that is a quote, a backslash, a control byte
 * (< 0x20) or non-ASCII (>= 0x80), or `end` (src/common/json_scan.h). */
static inline const unsigned char *plain_ascii_run(const unsigned char *p,
                                                   const unsigned char *end) {
  return p + trb_json_plain_ascii_run(p, (size_t)(end - p));
}

/* read_string for any string: the general path (escapes, non-ASCII bytes,
 * errors). */
static grpc_status_code read_string_any(ctx_t *c, const char **s, size_t *n)
    __attribute__((noinline));

/* Read a string at c->p (on the quote). s, n: the decoded UTF-8 text, pointing
 * into the input when it has no escapes, else into c->scratch (valid until
 * the next string read). Inline for the usual string, plain ASCII up to its
 * closing quote (the same result as read_string_any, without a call);
 * anything else goes to read_string_any from the start. */
static inline __attribute__((always_inline)) grpc_status_code read_string(
    ctx_t *c, const char **s, size_t *n) {
  const unsigned char *p = (const unsigned char *)c->p + 1;
  const unsigned char *end = (const unsigned char *)c->end;
  const unsigned char *q = plain_ascii_run(p, end);
  if (q < end && *q == '"') {
    *s = (const char *)p;
    *n = (size_t)(q - p);
    c->p = (const char *)q + 1;
    return GRPC_STATUS_OK;
  }
  return read_string_any(c, s, n);
}

static grpc_status_code read_string_any(ctx_t *c, const char **s, size_t *n) {
  const unsigned char *p = (const unsigned char *)c->p + 1;
  const unsigned char *end = (const unsigned char *)c->end;
  const unsigned char *start = p;
  /* Fast path: no escapes. Sixteen bytes at a time while they are plain
   * ASCII (no quote, backslash, control byte or high bit). */
  for (;;) {
    p = plain_ascii_run(p, end);
    if (p >= end || *p == '"' || *p == '\\') break;
    if (*p < 0x20) {
      c->p = (const char *)p;
      return syntax(c, "control character in string");
    }
    if (*p < 0x80) {
      p++;
    } else {
      size_t k = trb_json_utf8_len(p, end);
      if (!k) {
        c->p = (const char *)p;
        return fail(c, "invalid UTF-8 in string at byte %zu",
                    (size_t)((const char *)p - c->base));
      }
      p += k;
    }
  }
  if (p >= end) {
    c->p = (const char *)p;
    return syntax(c, "unterminated string");
  }
  if (*p == '"') {
    *s = (const char *)start;
    *n = (size_t)(p - start);
    c->p = (const char *)p + 1;
    return GRPC_STATUS_OK;
  }
  /* Slow path: decode escapes into scratch. */
  trb_buf_reset(&c->scratch);
  if (trb_buf_append(&c->scratch, start, (size_t)(p - start)) != 0) {
    c->oom = true;
    return fail(c, "oom");
  }
  while (p < end && *p != '"') {
    if (*p == '\\') {
      if (end - p < 2) {
        c->p = (const char *)end;
        return syntax(c, "unterminated string");
      }
      char e = (char)p[1];
      char one;
      switch (e) {
        case '"': one = '"'; break;
        case '\\': one = '\\'; break;
        case '/': one = '/'; break;
        case 'b': one = '\b'; break;
        case 'f': one = '\f'; break;
        case 'n': one = '\n'; break;
        case 'r': one = '\r'; break;
        case 't': one = '\t'; break;
        case 'u': one = 0; break;
        default:
          c->p = (const char *)p;
          return syntax(c, "invalid escape");
      }
      if (e != 'u') {
        if (trb_buf_append(&c->scratch, &one, 1) != 0) goto oom;
        p += 2;
        continue;
      }
      uint32_t cp;
      if (end - p < 6 || !hex4((const char *)p + 2, &cp)) {
        c->p = (const char *)p;
        return syntax(c, "invalid \\u escape");
      }
      p += 6;
      if (cp >= 0xdc00 && cp <= 0xdfff) {
        c->p = (const char *)p - 6;
        return fail(c, "lone low surrogate at byte %zu",
                    (size_t)(c->p - c->base));
      }
      if (cp >= 0xd800 && cp <= 0xdbff) {
        uint32_t lo;
        if (end - p < 6 || p[0] != '\\' || p[1] != 'u' ||
            !hex4((const char *)p + 2, &lo) || lo < 0xdc00 || lo > 0xdfff) {
          c->p = (const char *)p - 6;
          return fail(c, "lone high surrogate at byte %zu",
                      (size_t)(c->p - c->base));
        }
        p += 6;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
      }
      char u[4];
      size_t un;
      if (cp < 0x80) {
        u[0] = (char)cp;
        un = 1;
      } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3f));
        un = 2;
      } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        un = 3;
      } else {
        u[0] = (char)(0xf0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        un = 4;
      }
      if (trb_buf_append(&c->scratch, u, un) != 0) goto oom;
      continue;
    }
    if (*p < 0x20) {
      c->p = (const char *)p;
      return syntax(c, "control character in string");
    }
    size_t k = *p < 0x80 ? 1 : trb_json_utf8_len(p, end);
    if (!k) {
      c->p = (const char *)p;
      return fail(c, "invalid UTF-8 in string at byte %zu",
                  (size_t)((const char *)p - c->base));
    }
    if (trb_buf_append(&c->scratch, p, k) != 0) goto oom;
    p += k;
  }
  if (p >= end) {
    c->p = (const char *)p;
    return syntax(c, "unterminated string");
  }
  c->p = (const char *)p + 1;
  *s = c->scratch.data;
  *n = c->scratch.len;
  return GRPC_STATUS_OK;
oom:
  c->oom = true;
  return fail(c, "oom");
}

static bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }

/* Scan a JSON number at c->p; *integer: no fraction or exponent. */
static grpc_status_code read_number(ctx_t *c, const char **s, size_t *n,
                                    bool *integer) {
  const char *p = c->p, *end = c->end, *start = p;
  *integer = true;
  if (p < end && *p == '-') p++;
  if (p < end && *p == '0') {
    p++;
  } else if (p < end && *p >= '1' && *p <= '9') {
    while (p < end && is_digit(*p)) p++;
  } else {
    c->p = p;
    return syntax(c, "invalid number");
  }
  if (p < end && *p == '.') {
    *integer = false;
    p++;
    if (p >= end || !is_digit(*p)) {
      c->p = p;
      return syntax(c, "invalid number");
    }
    while (p < end && is_digit(*p)) p++;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    *integer = false;
    p++;
    if (p < end && (*p == '+' || *p == '-')) p++;
    if (p >= end || !is_digit(*p)) {
      c->p = p;
      return syntax(c, "invalid number");
    }
    while (p < end && is_digit(*p)) p++;
  }
  *s = start;
  *n = (size_t)(p - start);
  c->p = p;
  return GRPC_STATUS_OK;
}

/* Validate and skip any value. */
static grpc_status_code skip_value(ctx_t *c) {
  ws(c);
  if (c->p >= c->end) return syntax(c, "expected a value");
  const char *s;
  size_t n;
  bool integer;
  grpc_status_code rc;
  switch (*c->p) {
    case '"':
      return read_string(c, &s, &n);
    case '{':
    case '[': {
      char close = *c->p == '{' ? '}' : ']';
      bool obj = close == '}';
      if (++c->depth > TRB_BQ_JSON_MAX_DEPTH)
        return fail(c, "nesting deeper than %d at byte %zu",
                    TRB_BQ_JSON_MAX_DEPTH, (size_t)(c->p - c->base));
      c->p++;
      ws(c);
      if (c->p < c->end && *c->p == close) {
        c->p++;
        c->depth--;
        return GRPC_STATUS_OK;
      }
      for (;;) {
        if (obj) {
          ws(c);
          if (c->p >= c->end || *c->p != '"') return syntax(c, "expected a key");
          if ((rc = read_string(c, &s, &n)) != GRPC_STATUS_OK) return rc;
          ws(c);
          if (c->p >= c->end || *c->p != ':') return syntax(c, "expected ':'");
          c->p++;
        }
        if ((rc = skip_value(c)) != GRPC_STATUS_OK) return rc;
        ws(c);
        if (c->p < c->end && *c->p == ',') {
          c->p++;
          continue;
        }
        if (c->p < c->end && *c->p == close) {
          c->p++;
          c->depth--;
          return GRPC_STATUS_OK;
        }
        return syntax(c, obj ? "expected ',' or '}'" : "expected ',' or ']'");
      }
    }
    case 't':
      if (lit(c, "true", 4)) return GRPC_STATUS_OK;
      return syntax(c, "invalid literal");
    case 'f':
      if (lit(c, "false", 5)) return GRPC_STATUS_OK;
      return syntax(c, "invalid literal");
    case 'n':
      if (lit(c, "null", 4)) return GRPC_STATUS_OK;
      return syntax(c, "invalid literal");
    default:
      return read_number(c, &s, &n, &integer);
  }
}

/* ---- scalar conversions ------------------------------------------------- */

/* Parse an optionally signed decimal integer (whole text) into int64. */
static bool parse_i64(const char *s, size_t n, int64_t *out) {
  size_t i = 0;
  bool neg = false;
  if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
  if (i == n) return false;
  uint64_t lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  uint64_t v = 0;
  for (; i < n; i++) {
    if (!is_digit(s[i])) return false;
    unsigned d = (unsigned)(s[i] - '0');
    if (v > (lim - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return true;
}

static bool is_int_text(const char *s, size_t n) {
  size_t i = 0;
  if (i < n && (s[i] == '+' || s[i] == '-')) i++;
  if (i == n) return false;
  for (; i < n; i++)
    if (!is_digit(s[i])) return false;
  return true;
}

static bool parse_double(ctx_t *c, const char *s, size_t n, double *out) {
  char small[64];
  char *b = small;
  if (n >= sizeof small) {
    b = trb_malloc(n + 1);
    if (!b) {
      c->oom = true;
      return false;
    }
  }
  memcpy(b, s, n);
  b[n] = '\0';
  char *e;
  errno = 0;
  double d = strtod(b, &e);
  bool ok = n > 0 && e == b + n && !(isspace((unsigned char)b[0]));
  if (b != small) trb_free(b);
  if (ok && isinf(d)) ok = false; /* overflow of a finite literal */
  *out = d;
  return ok;
}

static bool ieq(const char *s, size_t n, const char *w) {
  size_t wn = strlen(w);
  if (n != wn) return false;
  for (size_t i = 0; i < n; i++) {
    char a = s[i], b = w[i];
    if (a >= 'A' && a <= 'Z') a = (char)(a - 'A' + 'a');
    if (a != b) return false;
  }
  return true;
}

static int b64v(unsigned char ch) {
  if (ch >= 'A' && ch <= 'Z') return ch - 'A';
  if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
  if (ch >= '0' && ch <= '9') return ch - '0' + 52;
  if (ch == '+') return 62;
  if (ch == '/') return 63;
  return -1;
}

/* Decode base64 (padding optional) into out (at least n*3/4+3 bytes). */
static bool b64_decode(const char *s, size_t n, uint8_t *out, size_t *out_n) {
  while (n > 0 && s[n - 1] == '=') n--;
  if (n % 4 == 1) return false;
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64v((unsigned char)s[i]);
    if (v < 0) return false;
    acc = acc << 6 | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (uint8_t)(acc >> bits);
    }
  }
  *out_n = o;
  return true;
}

/* NUMERIC fast path for plain decimals "[+-]d{0,9}[.d{1,9}]": the unscaled
 * value fits an int64, so skip values.c's big-integer arithmetic. Writes
 * the same minimal little-endian two's complement bytes as
 * trb_bq_numeric_parse. Returns false to fall back to it. */
static bool numeric_fast(const char *s, size_t n, uint8_t *out,
                         size_t *out_len) {
  size_t i = 0;
  bool neg = false;
  if (i < n && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
  int64_t v = 0;
  int ip = 0, fp = 0;
  while (i < n && is_digit(s[i])) {
    if (++ip > 9) return false;
    v = v * 10 + (s[i++] - '0');
  }
  if (i < n && s[i] == '.') {
    i++;
    while (i < n && is_digit(s[i])) {
      if (++fp > 9) return false;
      v = v * 10 + (s[i++] - '0');
    }
    if (fp == 0) return false;
  }
  if (i != n || ip + fp == 0) return false;
  for (; fp < 9; fp++) v *= 10;
  if (neg) v = -v;
  size_t k = 0;
  for (;;) {
    uint8_t byte = (uint8_t)((uint64_t)v & 0xff);
    out[k++] = byte;
    v = (v - (int64_t)byte) / 256; /* exact division: floor(v / 256) */
    if ((v == 0 && !(byte & 0x80)) || (v == -1 && (byte & 0x80))) break;
  }
  *out_len = k;
  return true;
}

/* Timestamp text, leniently as Java JsonToProtoMessage (fact 38):
 * yyyy[-/]MM[-/]dd[T| ]HH:mm[:ss][.fraction][ ][Z|UTC|±HH[:]MM], no zone =
 * UTC; also a bare yyyy-MM-dd (midnight UTC). Normalized to RFC 3339 for
 * trb_bq_timestamp_parse. */
static inline unsigned dig2(const char *s) {
  return (unsigned)(s[0] - '0') * 10 + (unsigned)(s[1] - '0');
}

/* The common shape "YYYY-MM-DD[T| ]HH:MM:SS[.f{1,9}]Z", valid and in range,
 * without the normalization copy: the value trb_bq_timestamp_parse gives
 * for it. Returns false for anything else (the general path decides). */
static bool ts_fast(const char *s, size_t n, int64_t *us) {
  /* The shape "dddd-dd-dd?dd:dd:dd" ('d' a digit, '?' 'T' or ' '),
   * tested without a loop: a byte is a digit when (byte - '0') <= 9. */
  if (n < 20 || n > 30 || s[n - 1] != 'Z') return false;
  if (s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != ' ') ||
      s[13] != ':' || s[16] != ':')
    return false;
#define TS_ND(i) ((unsigned)((unsigned char)s[i] - '0') > 9)
  if (TS_ND(0) | TS_ND(1) | TS_ND(2) | TS_ND(3) | TS_ND(5) | TS_ND(6) |
      TS_ND(8) | TS_ND(9) | TS_ND(11) | TS_ND(12) | TS_ND(14) | TS_ND(15) |
      TS_ND(17) | TS_ND(18))
    return false;
#undef TS_ND
  unsigned y = dig2(s) * 100 + dig2(s + 2), mo = dig2(s + 5), d = dig2(s + 8);
  unsigned h = dig2(s + 11), mi = dig2(s + 14), sec = dig2(s + 17);
  static const unsigned mdays[12] = {31, 28, 31, 30, 31, 30,
                                     31, 31, 30, 31, 30, 31};
  if (y < 1 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59)
    return false;
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (d > (mo == 2 && leap ? 29u : mdays[mo - 1])) return false;
  int64_t frac = 0;
  size_t i = 19;
  if (s[i] == '.') {
    size_t nd = n - 1 - (i + 1);
    if (nd < 1 || nd > 9) return false;
    for (size_t k = 0; k < nd; k++) {
      char ch = s[i + 1 + k];
      if (!is_digit(ch)) return false;
      if (k < 6)
        frac = frac * 10 + (ch - '0');
      else if (ch != '0')
        return false;
    }
    for (size_t k = nd; k < 6; k++) frac *= 10;
  } else if (i != n - 1) {
    return false;
  }
  int64_t v = (trb_bq_days_from_civil(y, mo, d) * 86400 +
               (int64_t)(h * 3600 + mi * 60 + sec)) *
                  1000000LL +
              frac;
  if (v < TRB_BQ_TIMESTAMP_MIN_US || v > TRB_BQ_TIMESTAMP_MAX_US) return false;
  *us = v;
  return true;
}

static grpc_status_code parse_ts_text(ctx_t *c, const char *s, size_t n,
                                      int64_t *us) {
  if (ts_fast(s, n, us)) return GRPC_STATUS_OK;
  char b[96];
  size_t o = 0, i = 0;
  trb_status_t tmp;
  if (n >= 64 || n < 10) goto bad;
  memcpy(b, s, 10);
  if ((b[4] == '/' && b[7] == '/') || (b[4] == '-' && b[7] == '-')) {
    b[4] = b[7] = '-';
  } else {
    goto bad;
  }
  o = i = 10;
  if (n == 10) {
    memcpy(b + o, "T00:00:00Z", 10);
    o += 10;
  } else {
    if (n < 16) goto bad;
    memcpy(b + o, s + i, 6); /* [T| ]HH:mm */
    o += 6;
    i += 6;
    if (i < n && s[i] == ':') {
      memcpy(b + o, s + i, 3 <= n - i ? 3 : n - i);
      size_t k = 3 <= n - i ? 3 : n - i;
      o += k;
      i += k;
    } else {
      memcpy(b + o, ":00", 3);
      o += 3;
    }
    if (i < n && s[i] == '.') {
      while (i < n && (s[i] == '.' || is_digit(s[i]))) b[o++] = s[i++];
    }
    if (i < n && s[i] == ' ') i++;
    if (i == n) {
      b[o++] = 'Z';
    } else if (n - i == 3 && ieq(s + i, 3, "utc")) {
      b[o++] = 'Z';
      i = n;
    } else if ((s[i] == '+' || s[i] == '-') && n - i == 5) { /* ±HHMM */
      memcpy(b + o, s + i, 3);
      b[o + 3] = ':';
      memcpy(b + o + 4, s + i + 3, 2);
      o += 6;
      i = n;
    } else {
      memcpy(b + o, s + i, n - i);
      o += n - i;
      i = n;
    }
  }
  if (trb_bq_timestamp_parse(b, o, us, &tmp) != GRPC_STATUS_OK)
    return fail(c, "%s", tmp.msg);
  return GRPC_STATUS_OK;
bad:
  return fail(c, "invalid TIMESTAMP \"%.*s\"", (int)(n > 40 ? 40 : n), s);
}

/* ---- conversion driven by the schema ----------------------------------- */

static grpc_status_code conv_object(ctx_t *c, const trb_bq_field_t *fs,
                                    size_t nf);

/* Copy the JSON value at c->p compactly (whitespace outside strings
 * dropped) as a string field. */
static grpc_status_code emit_json_value(ctx_t *c, uint32_t num) {
  const char *s0 = c->p;
  grpc_status_code rc = skip_value(c);
  if (rc != GRPC_STATUS_OK) return rc;
  size_t start;
  if (!ld_begin(c, num, &start)) return fail(c, "oom");
  const char *p = s0, *e = c->p;
  while (p < e) {
    const char *q = p;
    if (*p == '"') {
      q++;
      while (*q != '"') q += *q == '\\' ? 2 : 1;
      q++;
    } else if (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') {
      p++;
      continue;
    } else {
      while (q < e && *q != '"' && *q != ' ' && *q != '\n' && *q != '\r' &&
             *q != '\t')
        q++;
    }
    if (!put(c, p, (size_t)(q - p))) return fail(c, "oom");
    p = q;
  }
  if (!ld_end(c, start)) return fail(c, "oom");
  return GRPC_STATUS_OK;
}

static grpc_status_code conv_scalar(ctx_t *c, const trb_bq_field_t *f,
                                    uint32_t num, char kind, const char *s,
                                    size_t n, bool integer, bool bval);

/* One non-null value of field `f` (number `num`). */
static grpc_status_code conv_value(ctx_t *c, const trb_bq_field_t *f,
                                   uint32_t num) {
  const char *s = NULL;
  size_t n = 0;
  bool integer = false;
  grpc_status_code rc;
  char kind = *c->p; /* '"', '{', '[', 't', 'f', or a number */
  bool is_str = kind == '"';
  bool is_num = kind == '-' || is_digit(kind);
  bool is_bool = kind == 't' || kind == 'f';

  if (is_str && f->type == TRB_BQ_TYPE_STRING) { /* conv_scalar's STRING case */
    if ((rc = read_string(c, &s, &n)) != GRPC_STATUS_OK) return rc;
    return put_bytes_field(c, num, s, n) ? GRPC_STATUS_OK : fail(c, "oom");
  }
  if (f->type == TRB_BQ_TYPE_STRUCT) {
    if (kind != '{') return fail(c, "RECORD wants a JSON object");
    size_t start;
    if (!ld_begin(c, num, &start)) return fail(c, "oom");
    if ((rc = conv_object(c, f->fields, f->n_fields)) != GRPC_STATUS_OK)
      return rc;
    if (!ld_end(c, start)) return fail(c, "oom");
    return GRPC_STATUS_OK;
  }
  if (f->type == TRB_BQ_TYPE_JSON && !is_str) return emit_json_value(c, num);
  if (f->type == TRB_BQ_TYPE_BYTES && kind == '[') {
    /* Array of byte values. */
    c->p++;
    size_t start;
    if (!ld_begin(c, num, &start)) return fail(c, "oom");
    ws(c);
    if (c->p < c->end && *c->p == ']') {
      c->p++;
      return ld_end(c, start) ? GRPC_STATUS_OK : fail(c, "oom");
    }
    for (;;) {
      ws(c);
      if ((rc = read_number(c, &s, &n, &integer)) != GRPC_STATUS_OK) return rc;
      int64_t v;
      if (!integer || !parse_i64(s, n, &v) || v < 0 || v > 255)
        return fail(c, "BYTES array element %.*s is not 0..255", (int)(n > 40 ? 40 : n), s);
      uint8_t byte = (uint8_t)v;
      if (!put(c, &byte, 1)) return fail(c, "oom");
      ws(c);
      if (c->p < c->end && *c->p == ',') {
        c->p++;
        continue;
      }
      if (c->p < c->end && *c->p == ']') {
        c->p++;
        break;
      }
      return syntax(c, "expected ',' or ']'");
    }
    return ld_end(c, start) ? GRPC_STATUS_OK : fail(c, "oom");
  }
  if (kind == '{' || kind == '[')
    return fail(c, "%s wants a scalar, not a JSON %s", trb_bq_type_name(f->type),
                kind == '{' ? "object" : "array");

  /* Read the scalar token. */
  bool bval = false;
  if (is_str) {
    if ((rc = read_string(c, &s, &n)) != GRPC_STATUS_OK) return rc;
  } else if (is_num) {
    if ((rc = read_number(c, &s, &n, &integer)) != GRPC_STATUS_OK) return rc;
  } else if (is_bool) {
    if (lit(c, "true", 4)) {
      bval = true;
      s = "true";
      n = 4;
    } else if (lit(c, "false", 5)) {
      s = "false";
      n = 5;
    } else {
      return syntax(c, "invalid literal");
    }
  } else {
    return syntax(c, "expected a value");
  }
  return conv_scalar(c, f, num, kind, s, n, integer, bval);
}

/* A scalar token already read: `kind` its first character ('"' for a
 * string, whose decoded text is s/n), `integer` for a number without
 * fraction or exponent, `bval` for true. */
static grpc_status_code conv_scalar(ctx_t *c, const trb_bq_field_t *f,
                                    uint32_t num, char kind, const char *s,
                                    size_t n, bool integer, bool bval) {
  grpc_status_code rc;
  trb_status_t tmp;
  bool is_str = kind == '"';
  bool is_num = kind == '-' || is_digit(kind);
  bool is_bool = kind == 't' || kind == 'f';
  switch (f->type) {
    case TRB_BQ_TYPE_STRING:
      if (is_num && !integer)
        return fail(c, "STRING wants a string, integer or boolean");
      if (!put_bytes_field(c, num, s, n)) return fail(c, "oom");
      return GRPC_STATUS_OK;
    case TRB_BQ_TYPE_GEOGRAPHY:
    case TRB_BQ_TYPE_INTERVAL:
    case TRB_BQ_TYPE_JSON:
      if (!is_str)
        return fail(c, "%s wants a string", trb_bq_type_name(f->type));
      if (!put_bytes_field(c, num, s, n)) return fail(c, "oom");
      return GRPC_STATUS_OK;
    case TRB_BQ_TYPE_BYTES: {
      if (!is_str) return fail(c, "BYTES wants a base64 string");
      uint8_t small[192];
      uint8_t *b = small;
      size_t cap = n / 4 * 3 + 3, bn = 0;
      if (cap > sizeof small && !(b = trb_malloc(cap))) {
        c->oom = true;
        return fail(c, "oom");
      }
      bool ok = b64_decode(s, n, b, &bn);
      bool wrote = ok && put_bytes_field(c, num, b, bn);
      if (b != small) trb_free(b);
      if (!ok) return fail(c, "BYTES is not valid base64");
      return wrote ? GRPC_STATUS_OK : fail(c, "oom");
    }
    case TRB_BQ_TYPE_INT64: {
      int64_t v;
      if (is_bool || (is_num && !integer) || !parse_i64(s, n, &v)) {
        if ((is_num && integer) || (is_str && is_int_text(s, n)))
          return fail(c, "INT64 out of range: %.*s", (int)(n > 40 ? 40 : n), s);
        return fail(c, "INT64 wants an integer, got %.*s",
                    (int)(n > 40 ? 40 : n), s);
      }
      return put_varint_field(c, num, (uint64_t)v) ? GRPC_STATUS_OK
                                                   : fail(c, "oom");
    }
    case TRB_BQ_TYPE_DOUBLE: {
      double d;
      if (is_bool) return fail(c, "FLOAT64 wants a number");
      if (is_str && ieq(s, n, "nan")) {
        d = NAN;
      } else if (is_str && (ieq(s, n, "infinity") || ieq(s, n, "+infinity"))) {
        d = INFINITY;
      } else if (is_str && ieq(s, n, "-infinity")) {
        d = -INFINITY;
      } else if (!parse_double(c, s, n, &d)) {
        return fail(c, "FLOAT64 wants a finite number, got %.*s",
                    (int)(n > 40 ? 40 : n), s);
      }
      return put_double_field(c, num, d) ? GRPC_STATUS_OK : fail(c, "oom");
    }
    case TRB_BQ_TYPE_BOOL: {
      if (is_str) {
        if (ieq(s, n, "true")) {
          bval = true;
        } else if (!ieq(s, n, "false")) {
          return fail(c, "BOOL wants true or false");
        }
      } else if (!is_bool) {
        return fail(c, "BOOL wants true or false");
      }
      return put_varint_field(c, num, bval) ? GRPC_STATUS_OK : fail(c, "oom");
    }
    case TRB_BQ_TYPE_NUMERIC:
    case TRB_BQ_TYPE_BIGNUMERIC: {
      bool big = f->type == TRB_BQ_TYPE_BIGNUMERIC;
      if (is_bool) return fail(c, "%s wants a number", trb_bq_type_name(f->type));
      uint8_t b[TRB_BQ_NUMERIC_BYTES_MAX];
      size_t bn;
      if (!(!big && numeric_fast(s, n, b, &bn)) &&
          trb_bq_numeric_parse(s, n, big, b, &bn, &tmp) != GRPC_STATUS_OK)
        return fail(c, "%s", tmp.msg);
      return put_bytes_field(c, num, b, bn) ? GRPC_STATUS_OK : fail(c, "oom");
    }
    case TRB_BQ_TYPE_TIMESTAMP: {
      int64_t us;
      if (is_bool || (is_num && !integer))
        return fail(c, "TIMESTAMP wants a timestamp string or integer "
                       "microseconds");
      if (is_num || is_int_text(s, n)) {
        if (!parse_i64(s, n, &us) || us < TRB_BQ_TIMESTAMP_MIN_US ||
            us > TRB_BQ_TIMESTAMP_MAX_US)
          return fail(c, "TIMESTAMP out of range: %.*s", (int)(n > 40 ? 40 : n), s);
      } else if ((rc = parse_ts_text(c, s, n, &us)) != GRPC_STATUS_OK) {
        return rc;
      }
      return put_varint_field(c, num, (uint64_t)us) ? GRPC_STATUS_OK
                                                    : fail(c, "oom");
    }
    case TRB_BQ_TYPE_DATE: {
      int64_t d;
      if (is_str && !is_int_text(s, n)) {
        int32_t d32;
        if (trb_bq_date_parse(s, n, &d32, &tmp) != GRPC_STATUS_OK)
          return fail(c, "%s", tmp.msg);
        d = d32;
      } else if (is_bool || (is_num && !integer) || !parse_i64(s, n, &d) ||
                 d < TRB_BQ_DATE_MIN || d > TRB_BQ_DATE_MAX) {
        return fail(c, "DATE wants \"YYYY-MM-DD\" or days in range, got %.*s",
                    (int)(n > 40 ? 40 : n), s);
      }
      return put_varint_field(c, num, (uint64_t)d) ? GRPC_STATUS_OK
                                                   : fail(c, "oom");
    }
    case TRB_BQ_TYPE_TIME:
    case TRB_BQ_TYPE_DATETIME: {
      bool dt = f->type == TRB_BQ_TYPE_DATETIME;
      int64_t v;
      if (is_bool || (is_num && !integer))
        return fail(c, "%s wants a literal string or packed integer",
                    trb_bq_type_name(f->type));
      if (is_str && !is_int_text(s, n)) {
        rc = dt ? trb_bq_datetime_parse(s, n, &v, &tmp)
                : trb_bq_time_parse(s, n, &v, &tmp);
        if (rc != GRPC_STATUS_OK) return fail(c, "%s", tmp.msg);
      } else {
        char txt[TRB_BQ_DATETIME_BUF];
        if (!parse_i64(s, n, &v))
          return fail(c, "%s packed value out of range", trb_bq_type_name(f->type));
        rc = dt ? trb_bq_datetime_format(v, txt, &tmp)
                : trb_bq_time_format(v, txt, &tmp);
        if (rc != GRPC_STATUS_OK) return fail(c, "%s", tmp.msg);
      }
      return put_varint_field(c, num, (uint64_t)v) ? GRPC_STATUS_OK
                                                   : fail(c, "oom");
    }
    default:
      return fail(c, "unsupported column type %s", trb_bq_type_name(f->type));
  }
}

/* Value (possibly null or an array) for column `f`, number `num`. */
static grpc_status_code conv_field(ctx_t *c, const trb_bq_field_t *f,
                                   uint32_t num) {
  ws(c);
  if (c->p >= c->end) return syntax(c, "expected a value");
  if (*c->p == 'n') {
    if (!lit(c, "null", 4)) return syntax(c, "invalid literal");
    if (f->mode == TRB_BQ_MODE_REQUIRED)
      return fail(c, "null for a REQUIRED field");
    return GRPC_STATUS_OK;
  }
  if (f->mode != TRB_BQ_MODE_REPEATED) return conv_value(c, f, num);
  if (*c->p != '[') return fail(c, "REPEATED field wants a JSON array");
  if (++c->depth > TRB_BQ_JSON_MAX_DEPTH)
    return fail(c, "nesting deeper than %d", TRB_BQ_JSON_MAX_DEPTH);
  c->p++;
  ws(c);
  if (c->p < c->end && *c->p == ']') {
    c->p++;
    c->depth--;
    return GRPC_STATUS_OK;
  }
  for (size_t i = 0;; i++) {
    size_t saved = path_push_index(c, i);
    ws(c);
    if (c->p >= c->end) return syntax(c, "expected a value");
    if (*c->p == 'n') {
      if (!lit(c, "null", 4)) return syntax(c, "invalid literal");
      return fail(c, "null element in an array");
    }
    grpc_status_code rc = conv_value(c, f, num);
    if (rc != GRPC_STATUS_OK) return rc;
    c->nframes = saved;
    ws(c);
    if (c->p < c->end && *c->p == ',') {
      c->p++;
      continue;
    }
    if (c->p < c->end && *c->p == ']') {
      c->p++;
      c->depth--;
      return GRPC_STATUS_OK;
    }
    return syntax(c, "expected ',' or ']'");
  }
}

/* Whether the NUL-terminated column name `name` equals the `kn` key bytes
 * at `k`, ASCII case-insensitively (as strlen + strncasecmp in the C
 * locale, without measuring the name first). */
static inline bool name_eq(const char *name, const char *k, size_t kn) {
  for (size_t j = 0; j < kn; j++) {
    unsigned char a = (unsigned char)name[j], b = (unsigned char)k[j];
    if (a == b) {
      if (a == 0) return false; /* the name is shorter */
      continue;
    }
    unsigned char la = a | 0x20;
    if (la != (b | 0x20) || la < 'a' || la > 'z') return false;
  }
  return name[kn] == '\0';
}

/* trb_bq_field_find starting at `hint` and wrapping around: the same index
 * for a table whose column names are unique case-insensitively (which
 * trb_bq_table_parse and trb_bq_descriptor_build require). */
static inline int find_field_slow(const trb_bq_field_t *fs, size_t nf,
                                  const char *k, size_t kn, size_t hint) {
  for (size_t i = hint; i < nf; i++)
    if (name_eq(fs[i].name, k, kn)) return (int)i;
  for (size_t i = 0; i < hint && i < nf; i++)
    if (name_eq(fs[i].name, k, kn)) return (int)i;
  return -1;
}

/* A new name-length slot for `fs` (names measured now), NULL when all are
 * taken. */
static name_lens_t *lens_new(ctx_t *c, const trb_bq_field_t *fs, size_t nf) {
  if (c->nlens == LENS_SLOTS) return NULL;
  name_lens_t *l = &c->lens[c->nlens++];
  l->fs = fs;
  for (size_t i = 0; i < nf; i++) {
    size_t m = strlen(fs[i].name);
    l->len[i] = m < UINT32_MAX ? (uint32_t)m : UINT32_MAX;
  }
  return l;
}

/* The name-length slot of `fs` in this call (names measured when the
 * slot is taken), NULL when there is none (too many columns or arrays): the
 * search then runs without lengths. */
static inline name_lens_t *lens_of(ctx_t *c, const trb_bq_field_t *fs,
                                   size_t nf) {
  if (nf > LENS_FIELDS) return NULL;
  for (size_t i = 0; i < c->nlens; i++)
    if (c->lens[i].fs == fs) return &c->lens[i];
  return lens_new(c, fs, nf);
}

/* memcmp(a, b, n) == 0 for short n without a call: 8 bytes per load. */
static inline bool bytes_eq(const char *a, const char *b, size_t n) {
  uint64_t x, y;
  while (n >= 8) {
    memcpy(&x, a, 8);
    memcpy(&y, b, 8);
    if (x != y) return false;
    a += 8;
    b += 8;
    n -= 8;
  }
  if (n >= 4) {
    uint32_t u, v;
    memcpy(&u, a, 4);
    memcpy(&v, b, 4);
    if (u != v) return false;
    memcpy(&u, a + n - 4, 4);
    memcpy(&v, b + n - 4, 4);
    return u == v;
  }
  for (size_t i = 0; i < n; i++)
    if (a[i] != b[i]) return false;
  return true;
}

/* Whether column i's name equals the key, as name_eq(fs[i].name, k, kn):
 * a name of another length is rejected with one compare, then an exact
 * compare decides, and name_eq runs only on a mismatch of equal length (a
 * key in another case). */
static inline bool name_is(const name_lens_t *l, const trb_bq_field_t *fs,
                           size_t i, const char *k, size_t kn) {
  if (l->len[i] != kn) return false;
  return bytes_eq(fs[i].name, k, kn) || name_eq(fs[i].name, k, kn);
}

/* The index of the column named by the key (find_field_slow's answer),
 * searching from `hint`; `l`: lens_of(fs) or NULL. */
static inline __attribute__((always_inline)) int find_field(
    const name_lens_t *l, const trb_bq_field_t *fs, size_t nf, const char *k,
    size_t kn, size_t hint) {
  if (!l || kn >= UINT32_MAX) return find_field_slow(fs, nf, k, kn, hint);
  for (size_t i = hint; i < nf; i++)
    if (name_is(l, fs, i, k, kn)) return (int)i;
  for (size_t i = 0; i < hint && i < nf; i++)
    if (name_is(l, fs, i, k, kn)) return (int)i;
  return -1;
}

/* One caller-supplied member (trb_bq_transcode_row_extra) of the
 * top-level object, as a JSON string holding e->value would be. */
static grpc_status_code conv_extra(ctx_t *c, const trb_bq_field_t *fs,
                                   size_t nf, uint64_t *seen,
                                   const trb_bq_extra_field_t *e,
                                   size_t *hint) {
  size_t kn = strlen(e->name);
  int idx = find_field(lens_of(c, fs, nf), fs, nf, e->name, kn, *hint);
  if (idx >= 0) *hint = (size_t)idx + 1 < nf ? (size_t)idx + 1 : 0;
  size_t saved = path_push_name(c, idx >= 0 ? fs[idx].name : e->name, kn);
  const trb_bq_field_t *f = idx >= 0 ? &fs[idx] : NULL;
  if (!f && !c->ignore_unknown)
    return fail(c, "no such field in the table schema");
  if (f) {
    uint64_t bit = (uint64_t)1 << (idx % 64);
    if (seen[idx / 64] & bit) return fail(c, "field given twice");
    seen[idx / 64] |= bit;
    /* Checked before the string is read, as in conv_field/conv_value. */
    if (f->mode == TRB_BQ_MODE_REPEATED)
      return fail(c, "REPEATED field wants a JSON array");
    if (f->type == TRB_BQ_TYPE_STRUCT)
      return fail(c, "RECORD wants a JSON object");
  }
  /* The string's bytes must be UTF-8 (quotes, backslashes and control
   * bytes would be escaped in the text, so they are fine). */
  const char *v = e->value ? e->value : "";
  const unsigned char *p = (const unsigned char *)v;
  const unsigned char *end = p + (e->value ? e->value_len : 0);
  while ((p = plain_ascii_run(p, end)) < end) {
    if (*p < 0x80) {
      p++;
      continue;
    }
    size_t k = trb_json_utf8_len(p, end);
    if (!k)
      return fail(c, "invalid UTF-8 in string at byte %zu of the value",
                  (size_t)(p - (const unsigned char *)v));
    p += k;
  }
  if (f && (f->type == TRB_BQ_TYPE_STRING || f->type == TRB_BQ_TYPE_JSON ||
            f->type == TRB_BQ_TYPE_GEOGRAPHY ||
            f->type == TRB_BQ_TYPE_INTERVAL)) {
    /* conv_scalar's cases of these types for a string: the text as is. */
    if (!put_bytes_field(c, (uint32_t)idx + 1, v,
                         (size_t)(end - (const unsigned char *)v)))
      return fail(c, "oom");
  } else if (f && f->type == TRB_BQ_TYPE_TIMESTAMP && e->has_us) {
    /* The value parse_ts_text gives for the text (the caller's promise). */
    if (!put_varint_field(c, (uint32_t)idx + 1, (uint64_t)e->us))
      return fail(c, "oom");
  } else if (f) {
    grpc_status_code rc = conv_scalar(c, f, (uint32_t)idx + 1, '"', v,
                                      (size_t)(end - (const unsigned char *)v),
                                      false, false);
    if (rc != GRPC_STATUS_OK) return rc;
  }
  c->nframes = saved;
  return GRPC_STATUS_OK;
}

#define SEEN_WORDS 16 /* fields tracked on the stack: 1024 */

static grpc_status_code conv_object(ctx_t *c, const trb_bq_field_t *fs,
                                    size_t nf) {
  if (++c->depth > TRB_BQ_JSON_MAX_DEPTH)
    return fail(c, "nesting deeper than %d", TRB_BQ_JSON_MAX_DEPTH);
  size_t hint = 0; /* keys usually come in column order: search from the
                      column after the previous key's */
  uint64_t seen_small[SEEN_WORDS];
  uint64_t *seen = seen_small;
  grpc_status_code rc = GRPC_STATUS_OK;
  if (nf <= SEEN_WORDS * 64) {
    memset(seen_small, 0, (nf + 63) / 64 * sizeof *seen_small);
  } else {
    seen = trb_calloc((nf + 63) / 64, sizeof *seen);
    if (!seen) {
      c->oom = true;
      return fail(c, "oom");
    }
  }
  name_lens_t *lens = lens_of(c, fs, nf);
  c->p++; /* '{' */
  ws(c);
  if (c->p < c->end && *c->p == '}') {
    c->p++;
  } else {
    for (;;) {
      ws(c);
      if (c->p >= c->end || *c->p != '"') {
        rc = syntax(c, "expected a key");
        goto done;
      }
      const char *k;
      size_t kn;
      const char *kraw = c->p + 1;
      if ((rc = read_string(c, &k, &kn)) != GRPC_STATUS_OK) goto done;
      bool watched = c->watch && c->depth == 1 &&
                     (size_t)(c->p - 1 - kraw) == c->watch->key_len &&
                     memcmp(kraw, c->watch->key, c->watch->key_len) == 0;
      int idx = find_field(lens, fs, nf, k, kn, hint);
      size_t saved;
      if (idx >= 0) {
        hint = (size_t)idx + 1 < nf ? (size_t)idx + 1 : 0;
        saved = path_push_name(c, fs[idx].name, kn);
      } else if (k != c->scratch.data) {
        saved = path_push_name(c, k, kn);
      } else { /* decoded into scratch, which skip_value may reuse */
        memcpy(c->ukey, k, kn < sizeof c->ukey ? kn : sizeof c->ukey);
        saved = path_push_name(c, c->ukey, kn);
      }
      ws(c);
      if (c->p >= c->end || *c->p != ':') {
        rc = syntax(c, "expected ':'");
        goto done;
      }
      c->p++;
      const char *vstart = c->p;
      if (idx < 0) {
        if (!c->ignore_unknown) {
          rc = fail(c, "no such field in the table schema");
          goto done;
        }
        if ((rc = skip_value(c)) != GRPC_STATUS_OK) goto done;
      } else {
        uint64_t bit = (uint64_t)1 << (idx % 64);
        if (seen[idx / 64] & bit) {
          rc = fail(c, "field given twice");
          goto done;
        }
        seen[idx / 64] |= bit;
        const trb_bq_field_t *f = &fs[idx];
        ws(c);
        if (c->p < c->end && *c->p == '"' && f->type == TRB_BQ_TYPE_STRING &&
            f->mode != TRB_BQ_MODE_REPEATED) {
          /* conv_field -> conv_value's STRING case, without the calls. */
          const char *sv;
          size_t sn;
          if ((rc = read_string(c, &sv, &sn)) != GRPC_STATUS_OK) goto done;
          if (!put_bytes_field(c, (uint32_t)idx + 1, sv, sn)) {
            rc = fail(c, "oom");
            goto done;
          }
        } else if ((rc = conv_field(c, f, (uint32_t)idx + 1)) !=
                   GRPC_STATUS_OK) {
          goto done;
        }
      }
      if (watched) { /* the value's raw text, without whitespace around */
        const char *ve = c->p;
        while (vstart < ve && (*vstart == ' ' || *vstart == '\t' ||
                               *vstart == '\n' || *vstart == '\r'))
          vstart++;
        while (ve > vstart && (ve[-1] == ' ' || ve[-1] == '\t' ||
                               ve[-1] == '\n' || ve[-1] == '\r'))
          ve--;
        c->watch->count++;
        c->watch->last = vstart;
        c->watch->last_len = (size_t)(ve - vstart);
      }
      c->nframes = saved;
      ws(c);
      if (c->p < c->end && *c->p == ',') {
        c->p++;
        continue;
      }
      if (c->p < c->end && *c->p == '}') {
        c->p++;
        break;
      }
      rc = syntax(c, "expected ',' or '}'");
      goto done;
    }
  }
  if (c->depth == 1 && c->n_extra) {
    for (size_t i = 0; i < c->n_extra; i++) {
      if ((rc = conv_extra(c, fs, nf, seen, &c->extra[i], &hint)) != GRPC_STATUS_OK)
        goto done;
    }
  }
  for (size_t i = 0; i < nf; i++) {
    if (fs[i].mode == TRB_BQ_MODE_REQUIRED &&
        !(seen[i / 64] & ((uint64_t)1 << (i % 64)))) {
      path_push_name(c, fs[i].name, strlen(fs[i].name));
      rc = fail(c, "missing REQUIRED field");
      goto done;
    }
  }
  c->depth--;
done:
  if (seen != seen_small) trb_free(seen);
  return rc;
}

static void ctx_init(ctx_t *c, const char *json, size_t len, trb_buf_t *out,
                     trb_status_t *st) {
  c->base = c->p = json;
  c->end = json + len;
  c->out = out;
  trb_buf_init(&c->scratch);
  c->ignore_unknown = false;
  c->oom = false;
  c->depth = 0;
  c->st = st;
  c->nframes = 0;
  c->extra = NULL;
  c->n_extra = 0;
  c->watch = NULL;
  c->nlens = 0;
}

grpc_status_code trb_bq_transcode_row(const trb_bq_table_t *t,
                                      const char *json, size_t len,
                                      const trb_bq_transcode_opts_t *opts,
                                      trb_buf_t *out, trb_status_t *st) {
  return trb_bq_transcode_row_extra(t, json, len, NULL, 0, opts, out, st);
}

grpc_status_code trb_bq_transcode_row_extra(
    const trb_bq_table_t *t, const char *json, size_t len,
    const trb_bq_extra_field_t *extra, size_t n_extra,
    const trb_bq_transcode_opts_t *opts, trb_buf_t *out, trb_status_t *st) {
  ctx_t c;
  ctx_init(&c, json, len, out, st);
  c.ignore_unknown = opts && opts->ignore_unknown_fields;
  c.extra = extra;
  c.n_extra = extra ? n_extra : 0;
  c.watch = opts ? opts->watch : NULL;
  if (c.watch) {
    c.watch->count = 0;
    c.watch->last = NULL;
    c.watch->last_len = 0;
  }
  size_t mark = out->len;
  grpc_status_code rc;
  ws(&c);
  if (c.p >= c.end || *c.p != '{') {
    rc = c.p >= c.end ? syntax(&c, "a row is a JSON object")
                      : fail(&c, "a row is a JSON object");
  } else {
    rc = conv_object(&c, t->fields, t->n_fields);
    if (rc == GRPC_STATUS_OK) {
      ws(&c);
      if (c.p != c.end) rc = syntax(&c, "trailing data after the row");
    }
  }
  trb_buf_deinit(&c.scratch);
  if (rc != GRPC_STATUS_OK) out->len = mark;
  if (out->data) out->data[out->len] = '\0';
  return rc;
}

grpc_status_code trb_bq_json_check(const char *json, size_t len,
                                   trb_status_t *st) {
  ctx_t c;
  trb_buf_t none = TRB_BUF_INIT;
  ctx_init(&c, json, len, &none, st);
  grpc_status_code rc = skip_value(&c);
  if (rc == GRPC_STATUS_OK) {
    ws(&c);
    if (c.p != c.end) rc = syntax(&c, "trailing data");
  }
  trb_buf_deinit(&c.scratch);
  return rc;
}
