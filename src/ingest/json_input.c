/*
 * json_input.c — see json_input.h.
 */
#include "src/ingest/json_input.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "src/common/json_scan.h"

bool trb_ingest_utf8_valid(const char *s, size_t len, size_t *bad_offset) {
  const uint8_t *p = (const uint8_t *)s;
  size_t i = 0;
  while (i < len) {
    uint8_t c = p[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t n;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
      cp = c & 0x1F;
      min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      cp = c & 0x0F;
      min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      cp = c & 0x07;
      min = 0x10000;
    } else {
      goto bad;
    }
    if (len - i <= n) goto bad;
    for (size_t k = 1; k <= n; k++) {
      if ((p[i + k] & 0xC0) != 0x80) goto bad;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) goto bad;
    i += n + 1;
  }
  return true;
bad:
  if (bad_offset) *bad_offset = i;
  return false;
}

int trb_ingest_json_depth(const char *s, size_t len, int limit) {
  int depth = 0, max = 0;
  bool in_str = false;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (in_str) {
      if (c == '\\') {
        i++;
      } else if (c == '"') {
        in_str = false;
      }
      continue;
    }
    if (c == '"') {
      in_str = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max) {
        max = depth;
        if (max > limit) return limit + 1;
      }
    } else if (c == ']' || c == '}') {
      if (depth > 0) depth--;
    }
  }
  return max;
}

bool trb_ingest_json_blank(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return false;
  }
  return true;
}

grpc_status_code trb_ingest_json_parse(const char *s, size_t len,
                                       int max_depth, json_t **out,
                                       trb_status_t *st) {
  *out = NULL;
  if (max_depth <= 0) max_depth = TRB_INGEST_DEFAULT_MAX_DEPTH;
  if (len == 0 || trb_ingest_json_blank(s, len)) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT, "empty body");
  }
  size_t bad = 0;
  if (!trb_ingest_utf8_valid(s, len, &bad)) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "invalid UTF-8 at byte %zu", bad);
  }
  if (trb_ingest_json_depth(s, len, max_depth) > max_depth) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "JSON nested deeper than %d levels", max_depth);
  }
  json_error_t err;
  json_t *root =
      json_loadb(s, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES |
                             JSON_ALLOW_NUL, &err);
  if (!root) {
    if (json_error_code(&err) == json_error_out_of_memory) {
      return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                            "out of memory parsing JSON");
    }
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "malformed JSON at line %d column %d: %s",
                          err.line, err.column, err.text);
  }
  *out = root;
  return GRPC_STATUS_OK;
}

/* ---- trb_ingest_json_fast_check ---------------------------------------- */

enum { FC_MAX_DEPTH = 128, FC_MAX_KEYS = 256, FC_MAX_OBJ_KEYS = 32 };

static const uint8_t *fc_ws(const uint8_t *p, const uint8_t *end) {
  while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
  return p;
}

/* Four hex digits at p (caller checked there are four bytes), or -1. */
static int32_t fc_hex4(const uint8_t *p) {
  int32_t v = 0;
  for (int i = 0; i < 4; i++) {
    uint8_t c = p[i];
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else return -1;
    v = (v << 4) | d;
  }
  return v;
}

/* A string at p (on its '"'): past the closing quote, or NULL when it is
 * malformed or undecided (\u0000). `*esc` is set when it has escapes. */
static const uint8_t *fc_string(const uint8_t *p, const uint8_t *end,
                                bool *esc) {
  p++;
  for (;;) {
    p += trb_json_plain_ascii_run(p, (size_t)(end - p));
    if (p >= end) return NULL;
    uint8_t c = *p;
    if (c == '"') return p + 1;
    if (c < 0x20) return NULL;
    if (c >= 0x80) {
      size_t n = trb_json_utf8_len(p, end);
      if (n == 0) return NULL;
      p += n;
      continue;
    }
    /* backslash */
    *esc = true;
    if (end - p < 2) return NULL;
    switch (p[1]) {
      case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r':
      case 't':
        p += 2;
        continue;
      case 'u':
        break;
      default:
        return NULL;
    }
    if (end - p < 6) return NULL;
    int32_t cp = fc_hex4(p + 2);
    if (cp <= 0) return NULL; /* malformed, or \u0000 (undecided) */
    p += 6;
    if (cp >= 0xDC00 && cp <= 0xDFFF) return NULL; /* lone low surrogate */
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      if (end - p < 6 || p[0] != '\\' || p[1] != 'u') return NULL;
      int32_t lo = fc_hex4(p + 2);
      if (lo < 0xDC00 || lo > 0xDFFF) return NULL;
      p += 6;
    }
  }
}

/* A number at p: past it, or NULL when malformed or when jansson might
 * refuse it for range (integers over 18 digits overflow json_int_t;
 * reals kept far below DBL_MAX). */
static const uint8_t *fc_number(const uint8_t *p, const uint8_t *end) {
  if (*p == '-') p++;
  if (p >= end) return NULL;
  const uint8_t *d0 = p;
  if (*p == '0') {
    p++;
  } else if (*p >= '1' && *p <= '9') {
    while (p < end && *p >= '0' && *p <= '9') p++;
  } else {
    return NULL;
  }
  size_t int_digits = (size_t)(p - d0);
  bool real = false;
  if (p < end && *p == '.') {
    const uint8_t *f = ++p;
    while (p < end && *p >= '0' && *p <= '9') p++;
    if (p == f) return NULL;
    real = true;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '+' || *p == '-')) p++;
    const uint8_t *e = p;
    while (p < end && *p >= '0' && *p <= '9') p++;
    if (p == e || p - e > 2) return NULL;
    real = true;
  }
  if (real ? int_digits > 200 : int_digits > 18) return NULL;
  return p;
}

bool trb_ingest_json_fast_check(const char *text, size_t len, int max_depth,
                                trb_ingest_json_shape_t *shape) {
  if (max_depth <= 0) max_depth = TRB_INGEST_DEFAULT_MAX_DEPTH;
  if (max_depth > FC_MAX_DEPTH) max_depth = FC_MAX_DEPTH;
  memset(shape, 0, sizeof(*shape));
  const uint8_t *s = (const uint8_t *)text, *end = s + len, *p;
  uint8_t stack[FC_MAX_DEPTH];   /* '{' or '[' per open container */
  uint16_t kbase[FC_MAX_DEPTH];  /* first key of each open object */
  struct {
    const uint8_t *p;
    size_t n;
  } keys[FC_MAX_KEYS];
  size_t nk = 0;
  int depth = 0;
  bool esc;

  p = fc_ws(s, end);
  if (p == end) return false;
  shape->start = (size_t)(p - s);
  shape->is_object = *p == '{';

value:
  p = fc_ws(p, end);
  if (p >= end) return false;
  switch (*p) {
    case '{':
    case '[':
      if (depth >= max_depth) return false;
      stack[depth] = *p;
      kbase[depth] = (uint16_t)nk;
      depth++;
      p = fc_ws(p + 1, end);
      if (p < end && *p == (stack[depth - 1] == '{' ? '}' : ']')) {
        depth--;
        p++;
        goto after_value;
      }
      if (stack[depth - 1] == '{') goto key;
      goto value;
    case '"':
      esc = false;
      p = fc_string(p, end, &esc);
      if (!p) return false;
      goto after_value;
    case 't':
      if (end - p < 4 || memcmp(p, "true", 4) != 0) return false;
      p += 4;
      goto after_value;
    case 'f':
      if (end - p < 5 || memcmp(p, "false", 5) != 0) return false;
      p += 5;
      goto after_value;
    case 'n':
      if (end - p < 4 || memcmp(p, "null", 4) != 0) return false;
      p += 4;
      goto after_value;
    default:
      p = fc_number(p, end);
      if (!p) return false;
      goto after_value;
  }

key:
  if (p >= end || *p != '"') return false;
  {
    const uint8_t *k = p + 1;
    esc = false;
    p = fc_string(p, end, &esc);
    if (!p || esc) return false; /* escaped keys: undecided */
    size_t kn = (size_t)(p - 1 - k);
    size_t base = kbase[depth - 1];
    for (size_t i = base; i < nk; i++) {
      if (keys[i].n == kn && memcmp(keys[i].p, k, kn) == 0) return false;
    }
    if (nk - base >= FC_MAX_OBJ_KEYS || nk >= FC_MAX_KEYS) return false;
    keys[nk].p = k;
    keys[nk].n = kn;
    nk++;
    if (depth == 1) {
      if (kn == 4 && memcmp(k, "data", 4) == 0) shape->has_data = true;
      if (kn == 10 && memcmp(k, "event_type", 10) == 0) {
        shape->has_event_type = true;
      }
    }
  }
  p = fc_ws(p, end);
  if (p >= end || *p != ':') return false;
  p++;
  goto value;

after_value:
  if (depth == 0) {
    shape->end = (size_t)(p - s);
    return fc_ws(p, end) == end;
  }
  p = fc_ws(p, end);
  if (p >= end) return false;
  if (*p == ',') {
    p = fc_ws(p + 1, end);
    if (stack[depth - 1] == '{') goto key;
    goto value;
  }
  if (*p != (stack[depth - 1] == '{' ? '}' : ']')) return false;
  if (stack[depth - 1] == '{') nk = kbase[depth - 1];
  depth--;
  p++;
  goto after_value;
}

bool trb_ingest_ndjson_next(const char *s, size_t len, size_t *pos,
                            const char **line, size_t *line_len,
                            size_t *lineno) {
  while (*pos < len) {
    size_t start = *pos;
    const char *nl = memchr(s + start, '\n', len - start);
    size_t end = nl ? (size_t)(nl - s) : len;
    *pos = nl ? end + 1 : len;
    if (lineno) (*lineno)++;
    size_t n = end - start;
    if (n > 0 && s[start + n - 1] == '\r') n--;
    if (trb_ingest_json_blank(s + start, n)) continue;
    *line = s + start;
    *line_len = n;
    return true;
  }
  return false;
}

int trb_ingest_json_append_str(trb_buf_t *b, const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  /* Up to 16 KiB of input, room for the worst case (6 bytes per byte) is
   * reserved at once — buffers reused from request to request keep it —
   * so the copy loop never checks room; longer strings reserve as they
   * meet escapes. Plain bytes are found 16 at a time and copied in runs. */
  bool worst = len <= 16384;
  if (trb_buf_reserve(b, (worst ? 6 * len : len) + 2) != 0) return -ENOMEM;
  char *o = b->data + b->len;
  *o++ = '"';
  size_t i = 0;
  while (i < len) {
    size_t j = i + trb_json_plain_run((const uint8_t *)s + i, len - i);
    memcpy(o, s + i, j - i);
    o += j - i;
    i = j;
    if (i == len) break;
    if (!worst) {
      /* Room for this escape (6) plus the rest unescaped and the quote. */
      b->len = (size_t)(o - b->data);
      if (trb_buf_reserve(b, 6 + (len - i - 1) + 1) != 0) return -ENOMEM;
      o = b->data + b->len;
    }
    unsigned char c = (unsigned char)s[i++];
    o[0] = '\\';
    size_t n = 2;
    switch (c) {
      case '"': o[1] = '"'; break;
      case '\\': o[1] = '\\'; break;
      case '\n': o[1] = 'n'; break;
      case '\r': o[1] = 'r'; break;
      case '\t': o[1] = 't'; break;
      case '\b': o[1] = 'b'; break;
      case '\f': o[1] = 'f'; break;
      default:
        o[1] = 'u';
        o[2] = '0';
        o[3] = '0';
        o[4] = hex[c >> 4];
        o[5] = hex[c & 15];
        n = 6;
        break;
    }
    o += n;
  }
  *o++ = '"';
  *o = '\0';
  b->len = (size_t)(o - b->data);
  return 0;
}
