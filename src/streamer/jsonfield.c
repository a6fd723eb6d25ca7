/*
 * jsonfield.c — single-pass field lookup (see jsonfield.h).
 */
#include "src/streamer/jsonfield.h"

#include "src/common/json_scan.h"

#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 64

typedef struct {
  const char *p, *end;
} scan_t;

static void ws(scan_t *s) {
  while (s->p < s->end &&
         (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
    s->p++;
}

/* The first byte at or after `p` that may end a plain run inside a JSON
 * string ('"', '\\' or a control byte < 0x20; bytes >= 0x80 do not):
 * the shared scan (SSE2/SWAR) of src/common/json_scan.h. */
static const char *plain_run(const char *p, const char *end) {
  return p + trb_json_plain_run((const uint8_t *)p, (size_t)(end - p));
}

/* At an opening quote: move past the closing one; body in *b, *bl. */
static bool str(scan_t *s, const char **b, size_t *bl) {
  if (s->p >= s->end || *s->p != '"') return false;
  const char *start = ++s->p;
  while (s->p < s->end) {
    s->p = plain_run(s->p, s->end);
    if (s->p >= s->end) break;
    unsigned char c = (unsigned char)*s->p;
    if (c == '"') {
      *b = start;
      *bl = (size_t)(s->p - start);
      s->p++;
      return true;
    }
    if (c < 0x20) return false;
    if (c == '\\') {
      if (s->end - s->p < 2) return false;
      s->p += 2;
      continue;
    }
    s->p++;
  }
  return false;
}

static bool lit(scan_t *s, const char *w) {
  size_t n = strlen(w);
  if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0) return false;
  s->p += n;
  return true;
}

static bool num(scan_t *s) {
  const char *st = s->p;
  if (s->p < s->end && *s->p == '-') s->p++;
  const char *d = s->p;
  while (s->p < s->end &&
         ((*s->p >= '0' && *s->p <= '9') || *s->p == '.' || *s->p == 'e' ||
          *s->p == 'E' || *s->p == '+' || *s->p == '-'))
    s->p++;
  return s->p > d && s->p > st;
}

/* Skip one value of any kind. */
static bool skip(scan_t *s, int depth) {
  ws(s);
  if (s->p >= s->end) return false;
  const char *b;
  size_t bl;
  switch (*s->p) {
    case '"': return str(s, &b, &bl);
    case 't': return lit(s, "true");
    case 'f': return lit(s, "false");
    case 'n': return lit(s, "null");
    case '{':
    case '[': {
      if (depth >= MAX_DEPTH) return false;
      char close = *s->p == '{' ? '}' : ']';
      bool obj = close == '}';
      s->p++;
      ws(s);
      if (s->p < s->end && *s->p == close) {
        s->p++;
        return true;
      }
      for (;;) {
        ws(s);
        if (obj) {
          if (!str(s, &b, &bl)) return false;
          ws(s);
          if (s->p >= s->end || *s->p != ':') return false;
          s->p++;
        }
        if (!skip(s, depth + 1)) return false;
        ws(s);
        if (s->p >= s->end) return false;
        if (*s->p == ',') {
          s->p++;
          continue;
        }
        if (*s->p == close) {
          s->p++;
          return true;
        }
        return false;
      }
    }
    default: return num(s);
  }
}

static trb_json_kind_t kind_at(char c) {
  switch (c) {
    case '"': return TRB_JSON_STRING;
    case '{': return TRB_JSON_OBJECT;
    case '[': return TRB_JSON_ARRAY;
    case 't':
    case 'f': return TRB_JSON_BOOL;
    case 'n': return TRB_JSON_NULL;
    default: return TRB_JSON_NUMBER;
  }
}

/* The members of the object whose '{' was just consumed (whitespace after
 * it skipped): finds the member named key[0..key_len) (raw key bytes).
 * first: stop right after the first such member's value; else read to the
 * closing '}' and keep the last (duplicates: last wins). Returns 1 with
 * *hit..*hit_end the value's text, 0 when there is none, -1 when the text
 * is malformed before the scan could stop. */
static int find_member(scan_t *s, const char *key, size_t key_len, bool first,
                       const char **hit, const char **hit_end) {
  *hit = NULL;
  if (s->p < s->end && *s->p == '}') {
    s->p++;
    return 0;
  }
  for (;;) {
    const char *kb;
    size_t kl;
    ws(s);
    if (!str(s, &kb, &kl)) return -1;
    ws(s);
    if (s->p >= s->end || *s->p != ':') return -1;
    s->p++;
    ws(s);
    const char *vstart = s->p;
    if (!skip(s, 1)) return -1;
    if (kl == key_len && memcmp(kb, key, kl) == 0) {
      *hit = vstart;
      *hit_end = s->p;
      if (first) return 1;
    }
    ws(s);
    if (s->p >= s->end) return -1;
    if (*s->p == ',') {
      s->p++;
      continue;
    }
    if (*s->p == '}') {
      s->p++;
      return *hit ? 1 : 0;
    }
    return -1;
  }
}

/* Opens the top-level object of s: 1 when s->p is past its '{', else the
 * kind to return (MISSING for another well-formed value, MALFORMED). */
static int open_object(scan_t *s, trb_json_kind_t *ret) {
  ws(s);
  if (s->p >= s->end) {
    *ret = TRB_JSON_MALFORMED;
    return 0;
  }
  if (*s->p != '{') {
    *ret = skip(s, 0) ? TRB_JSON_MISSING : TRB_JSON_MALFORMED;
    return 0;
  }
  s->p++;
  ws(s);
  return 1;
}

/* The value at hit..hit_end: strings without their quotes. */
static trb_json_kind_t value_of(const char *hit, const char *hit_end,
                                const char **val, size_t *val_len) {
  trb_json_kind_t k = kind_at(*hit);
  if (k == TRB_JSON_STRING) {
    *val = hit + 1;
    *val_len = (size_t)(hit_end - hit) - 2;
  } else {
    *val = hit;
    *val_len = (size_t)(hit_end - hit);
  }
  return k;
}

trb_json_kind_t trb_json_field(const char *json, size_t len, const char *path,
                               const char **val, size_t *val_len) {
  scan_t s = {json, json + len};
  const char *seg = path;
  for (;;) {
    const char *dot = strchr(seg, '.');
    size_t seg_len = dot ? (size_t)(dot - seg) : strlen(seg);
    trb_json_kind_t ret;
    if (!open_object(&s, &ret)) return ret;
    const char *hit = NULL, *hit_end = NULL;
    int r = find_member(&s, seg, seg_len, false, &hit, &hit_end);
    if (r < 0) return TRB_JSON_MALFORMED;
    if (r == 0) return TRB_JSON_MISSING;
    if (dot) {
      seg = dot + 1;
      s.p = hit;
      s.end = hit_end;
      continue;
    }
    return value_of(hit, hit_end, val, val_len);
  }
}

bool trb_json_key_plain(const char *key, size_t key_len) {
  return trb_json_plain_run((const uint8_t *)key, key_len) == key_len;
}

static bool is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The fast path of trb_json_field_first: the object's first member has the
 * (plain) key — routed messages usually lead with their type. A plain key
 * followed by a quote is exactly the string str() would read there, and a
 * string value whose plain run ends at a quote is exactly what str() reads
 * (escapes and control bytes go to skip()), so this finds what find_member
 * finds. Returns 0 when it cannot tell (the caller then takes the general
 * path from the start), else 1 with the kind in *kind. */
static int first_member_fast(const char *json, size_t len, const char *key,
                             size_t key_len, trb_json_kind_t *kind,
                             const char **val, size_t *val_len,
                             const char **raw, size_t *raw_len) {
  const char *p = json, *end = json + len;
  while (p < end && is_ws(*p)) p++;
  if (p >= end || *p != '{') return 0;
  p++;
  while (p < end && is_ws(*p)) p++;
  if ((size_t)(end - p) < key_len + 2 || p[0] != '"' || p[key_len + 1] != '"' ||
      memcmp(p + 1, key, key_len) != 0)
    return 0;
  p += key_len + 2;
  while (p < end && is_ws(*p)) p++;
  if (p >= end || *p != ':') return 0;
  p++;
  while (p < end && is_ws(*p)) p++;
  const char *vstart = p;
  if (p < end && *p == '"') {
    const char *q = plain_run(p + 1, end);
    if (q < end && *q == '"') {
      p = q + 1;
    } else {
      scan_t s = {vstart, end};
      if (!skip(&s, 1)) return 0;
      p = s.p;
    }
  } else {
    scan_t s = {vstart, end};
    if (!skip(&s, 1)) return 0;
    p = s.p;
  }
  *raw = vstart;
  *raw_len = (size_t)(p - vstart);
  *kind = value_of(vstart, p, val, val_len);
  return 1;
}

/* The first member named `key` by the general member scan. */
static trb_json_kind_t first_by_scan(const char *json, size_t len,
                                     const char *key, size_t key_len,
                                     const char **val, size_t *val_len,
                                     const char **raw, size_t *raw_len) {
  scan_t s = {json, json + len};
  trb_json_kind_t ret;
  if (!open_object(&s, &ret)) return ret;
  const char *hit = NULL, *hit_end = NULL;
  int r = find_member(&s, key, key_len, true, &hit, &hit_end);
  if (r < 0) return TRB_JSON_MALFORMED;
  if (r == 0) return TRB_JSON_MISSING;
  *raw = hit;
  *raw_len = (size_t)(hit_end - hit);
  return value_of(hit, hit_end, val, val_len);
}

trb_json_kind_t trb_json_field_first_plain(const char *json, size_t len,
                                           const char *key, size_t key_len,
                                           const char **val, size_t *val_len,
                                           const char **raw, size_t *raw_len) {
  trb_json_kind_t k;
  if (first_member_fast(json, len, key, key_len, &k, val, val_len, raw, raw_len))
    return k;
  return first_by_scan(json, len, key, key_len, val, val_len, raw, raw_len);
}

trb_json_kind_t trb_json_field_first(const char *json, size_t len,
                                     const char *key, size_t key_len,
                                     const char **val, size_t *val_len,
                                     const char **raw, size_t *raw_len) {
  if (trb_json_key_plain(key, key_len))
    return trb_json_field_first_plain(json, len, key, key_len, val, val_len,
                                      raw, raw_len);
  return first_by_scan(json, len, key, key_len, val, val_len, raw, raw_len);
}

static int hexv(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static bool hex4(const char *p, const char *end, uint32_t *out) {
  if (end - p < 4) return false;
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    int h = hexv(p[i]);
    if (h < 0) return false;
    v = v << 4 | (uint32_t)h;
  }
  *out = v;
  return true;
}

bool trb_json_string_equals(const char *raw, size_t raw_len, const char *want) {
  const char *p = raw, *end = raw + raw_len;
  const unsigned char *w = (const unsigned char *)want;
  while (p < end) {
    if (*p != '\\') {
      if (*w == 0 || (unsigned char)*p != *w) return false;
      p++;
      w++;
      continue;
    }
    if (end - p < 2) return false;
    char e = p[1];
    p += 2;
    unsigned char c;
    switch (e) {
      case '"': c = '"'; break;
      case '\\': c = '\\'; break;
      case '/': c = '/'; break;
      case 'b': c = '\b'; break;
      case 'f': c = '\f'; break;
      case 'n': c = '\n'; break;
      case 'r': c = '\r'; break;
      case 't': c = '\t'; break;
      case 'u': {
        uint32_t cp;
        if (!hex4(p, end, &cp)) return false;
        p += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          uint32_t lo;
          if (end - p < 6 || p[0] != '\\' || p[1] != 'u' ||
              !hex4(p + 2, end, &lo) || lo < 0xDC00 || lo > 0xDFFF)
            return false;
          p += 6;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        unsigned char u[4];
        int n;
        if (cp < 0x80) {
          u[0] = (unsigned char)cp;
          n = 1;
        } else if (cp < 0x800) {
          u[0] = (unsigned char)(0xC0 | cp >> 6);
          u[1] = (unsigned char)(0x80 | (cp & 0x3F));
          n = 2;
        } else if (cp < 0x10000) {
          u[0] = (unsigned char)(0xE0 | cp >> 12);
          u[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
          u[2] = (unsigned char)(0x80 | (cp & 0x3F));
          n = 3;
        } else {
          u[0] = (unsigned char)(0xF0 | cp >> 18);
          u[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
          u[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
          u[3] = (unsigned char)(0x80 | (cp & 0x3F));
          n = 4;
        }
        for (int i = 0; i < n; i++, w++)
          if (*w != u[i]) return false;
        continue;
      }
      default: return false;
    }
    if (*w != c) return false;
    w++;
  }
  return *w == 0;
}
