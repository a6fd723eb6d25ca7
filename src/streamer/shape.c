/*
 * shape.c — rows and dead-letter attributes (see shape.h).
 */
#include "src/streamer/shape.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "src/common/json_scan.h"

/* 1 for the bytes a JSON string must escape: '"', '\\' and < 0x20. */
static const unsigned char kEscape[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* '"' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* '\\' */
};

/* Append s[0..n) as a JSON string: quoted, with '"', '\\' and the control
 * bytes escaped (\" \\ \n \r \t, others \u00XX), UTF-8 copied through.
 * Written in place after one reservation for the unescaped text; the runs
 * between escapes are found with the shared scanner (json_scan.h) — under
 * 16 bytes by a byte loop over kEscape, the same set — and an escape reserves
 * room for itself and the rest. Returns 0 or -1 (out of
 * memory). */
static int put_json_string(trb_buf_t *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  if (n > SIZE_MAX / 2 || trb_buf_reserve(b, n + 2)) return -1;
  char *w = b->data + b->len;
  *w++ = '"';
  size_t i = 0;
  for (;;) {
    if (n - i < 16) {
      /* A short rest (most attribute keys and values): copied byte by
       * byte up to a byte to escape, without the scanner's and memcpy's
       * set-up. */
      while (i < n && !kEscape[(unsigned char)s[i]]) *w++ = s[i++];
    } else {
      size_t run = trb_json_plain_run((const uint8_t *)s + i, n - i);
      memcpy(w, s + i, run);
      w += run;
      i += run;
    }
    if (i == n) break;
    b->len = (size_t)(w - b->data);
    /* Up to 6 bytes for this one, then the rest and the closing quote. */
    if (trb_buf_reserve(b, 6 + (n - i - 1) + 1)) return -1;
    w = b->data + b->len;
    unsigned char c = (unsigned char)s[i++];
    *w++ = '\\';
    switch (c) {
      case '"': *w++ = '"'; break;
      case '\\': *w++ = '\\'; break;
      case '\n': *w++ = 'n'; break;
      case '\r': *w++ = 'r'; break;
      case '\t': *w++ = 't'; break;
      default:
        *w++ = 'u';
        *w++ = '0';
        *w++ = '0';
        *w++ = hex[c >> 4];
        *w++ = hex[c & 15];
    }
  }
  *w++ = '"';
  b->len = (size_t)(w - b->data);
  b->data[b->len] = '\0';
  return 0;
}

/* Append one byte. Returns 0 or -1 (out of memory). */
static inline int put_char(trb_buf_t *b, char ch) {
  if (b->cap - b->len < 2 && trb_buf_reserve(b, 1)) return -1;
  b->data[b->len++] = ch;
  b->data[b->len] = '\0';
  return 0;
}

/* The attributes as a JSON object text {"k":"v",...} appended to `b` (the
 * text both trb_shape_row and trb_shape_extras use). Returns 0 or -1. */
static int put_attrs_object(trb_buf_t *b, const trb_ps_attr_t *attrs,
                            size_t n_attrs) {
  if (put_char(b, '{')) return -1;
  for (size_t i = 0; i < n_attrs; i++) {
    if ((i && put_char(b, ',')) ||
        put_json_string(b, attrs[i].key, strlen(attrs[i].key)) ||
        put_char(b, ':') ||
        put_json_string(b, attrs[i].value, strlen(attrs[i].value)))
      return -1;
  }
  return put_char(b, '}');
}

/* Two decimal digits of v (0..99). */
static inline char *put2(char *p, int64_t v) {
  static const char d[] =
      "00010203040506070809101112131415161718192021222324252627282930313233"
      "34353637383940414243444546474849505152535455565758596061626364656667"
      "6869707172737475767778798081828384858687888990919293949596979899";
  memcpy(p, d + 2 * v, 2);
  return p + 2;
}

/* "YYYY-MM-DDTHH:MM:SS.ffffffZ" (27 bytes + NUL) for a time in years
 * 0000–9999 (civil-from-days, H. Hinnant), without strftime's locale and
 * time zone work; other times through gmtime_r/strftime. Returns the
 * length. *us: set to the microseconds since the epoch the text denotes
 * when it is that RFC 3339 form in years 0001-9999 (what the transcoder
 * reads as a TIMESTAMP: trb_bq_extra_field_t.has_us), else left alone and
 * *has_us false. */
static size_t format_time(char ts[64], int64_t sec, int32_t nanos,
                          bool *has_us, int64_t *us) {
  int64_t micros = nanos / 1000;
  *has_us = false;
  if (sec < -62167219200LL || sec > 253402300799LL || micros < 0 ||
      micros > 999999) {
    time_t t = (time_t)sec;
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t k = strftime(ts, 64, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + k, 64 - k, ".%06dZ", (int)(nanos / 1000));
    return strlen(ts);
  }
  if (sec >= -62135596800LL) { /* 0001-01-01T00:00:00Z */
    *has_us = true;
    *us = sec * 1000000 + micros;
  }
  int64_t days = sec / 86400, rem = sec % 86400;
  if (rem < 0) {
    rem += 86400;
    days--;
  }
  int64_t z = days + 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = yoe + era * 400;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  int64_t d = doy - (153 * mp + 2) / 5 + 1;
  int64_t mo = mp < 10 ? mp + 3 : mp - 9;
  if (mo <= 2) y++;
  int64_t hh = rem / 3600, mm = rem / 60 % 60, ss = rem % 60;
  char *p = ts;
  p = put2(p, y / 100);
  p = put2(p, y % 100);
  *p++ = '-';
  p = put2(p, mo);
  *p++ = '-';
  p = put2(p, d);
  *p++ = 'T';
  p = put2(p, hh);
  *p++ = ':';
  p = put2(p, mm);
  *p++ = ':';
  p = put2(p, ss);
  *p++ = '.';
  p = put2(p, micros / 10000);
  p = put2(p, micros / 100 % 100);
  p = put2(p, micros % 100);
  *p++ = 'Z';
  *p = 0;
  return (size_t)(p - ts);
}

/* Append a string literal (its length known at compile time). */
#define PUT_LIT(b, lit) trb_buf_append((b), (lit), sizeof(lit) - 1)

static int put_meta(trb_buf_t *b, const trb_shape_meta_t *m) {
  char ts[64];
  bool has_us;
  int64_t us;
  size_t tsl =
      format_time(ts, m->publish_time_s, m->publish_time_nanos, &has_us, &us);
  size_t sl = m->subscription_len ? m->subscription_len
                                  : strlen(m->subscription);
  size_t il = m->message_id_len ? m->message_id_len : strlen(m->message_id);
  /* The fixed parts plus the strings unescaped: one reservation. */
  if (trb_buf_reserve(b, sl + il + tsl + 96)) return -1;
  if (PUT_LIT(b, "\"subscription_name\":") ||
      put_json_string(b, m->subscription, sl) ||
      PUT_LIT(b, ",\"message_id\":") ||
      put_json_string(b, m->message_id, il) ||
      PUT_LIT(b, ",\"publish_time\":\"") ||
      trb_buf_append(b, ts, tsl) ||
      PUT_LIT(b, "\",\"attributes\":"))
    return -1;
  if (m->n_attrs == 0) return PUT_LIT(b, "\"{}\"");
  trb_buf_t a = TRB_BUF_INIT;
  int rc = put_attrs_object(&a, m->attrs, m->n_attrs);
  if (!rc) rc = put_json_string(b, a.data, a.len);
  trb_buf_deinit(&a);
  return rc;
}

grpc_status_code trb_shape_row(const uint8_t *data, size_t len, bool envelope,
                               bool write_metadata, const trb_shape_meta_t *m,
                               trb_buf_t *out, trb_status_t *st) {
  trb_buf_reset(out);
  int rc;
  if (envelope) {
    rc = trb_buf_append_str(out, "{\"payload\":");
    if (!rc) rc = put_json_string(out, (const char *)data, len);
    if (!rc && write_metadata) rc = trb_buf_append(out, ",", 1);
    if (!rc && write_metadata) rc = put_meta(out, m);
    if (!rc) rc = trb_buf_append(out, "}", 1);
  } else if (write_metadata) {
    /* Find the object's closing brace and whether it has members. */
    size_t e = len;
    while (e > 0 && (data[e - 1] == ' ' || data[e - 1] == '\n' ||
                     data[e - 1] == '\r' || data[e - 1] == '\t'))
      e--;
    size_t b = 0;
    while (b < e && (data[b] == ' ' || data[b] == '\n' || data[b] == '\r' ||
                     data[b] == '\t'))
      b++;
    if (e < b + 2 || data[b] != '{' || data[e - 1] != '}')
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "$: message data is not a JSON object");
    size_t inner = e - 1;
    size_t k = b + 1;
    while (k < inner && (data[k] == ' ' || data[k] == '\n' || data[k] == '\r' ||
                         data[k] == '\t'))
      k++;
    bool empty = k == inner;
    rc = trb_buf_append(out, data + b, inner - b);
    if (!rc && !empty) rc = trb_buf_append(out, ",", 1);
    if (!rc) rc = put_meta(out, m);
    if (!rc) rc = trb_buf_append(out, "}", 1);
  } else {
    rc = trb_buf_append(out, data, len);
  }
  if (rc) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  return GRPC_STATUS_OK;
}

/* Whether the data, trimmed of JSON white space, is "{...}" (the check
 * trb_shape_row makes before adding metadata). */
static bool is_object_text(const uint8_t *data, size_t len) {
  size_t e = len, b = 0;
  while (e > 0 && (data[e - 1] == ' ' || data[e - 1] == '\n' ||
                   data[e - 1] == '\r' || data[e - 1] == '\t'))
    e--;
  while (b < e && (data[b] == ' ' || data[b] == '\n' || data[b] == '\r' ||
                   data[b] == '\t'))
    b++;
  return e >= b + 2 && data[b] == '{' && data[e - 1] == '}';
}

grpc_status_code trb_shape_extras(const uint8_t *data, size_t len,
                                  bool envelope, bool write_metadata,
                                  const trb_shape_meta_t *m, trb_buf_t *scratch,
                                  trb_shape_extras_t *x, trb_status_t *st) {
  x->n = 0;
  x->row = (const char *)data;
  x->row_len = len;
  if (envelope) {
    x->row = "{}";
    x->row_len = 2;
    x->f[x->n++] =
        (trb_bq_extra_field_t){"payload", (const char *)data, len, false, 0};
  } else if (write_metadata && !is_object_text(data, len)) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "$: message data is not a JSON object");
  }
  if (!write_metadata) return GRPC_STATUS_OK;
  bool has_us;
  int64_t us = 0;
  size_t tsl = format_time(x->ts, m->publish_time_s, m->publish_time_nanos,
                           &has_us, &us);
  size_t sl = m->subscription_len ? m->subscription_len
                                  : strlen(m->subscription);
  size_t il = m->message_id_len ? m->message_id_len : strlen(m->message_id);
  x->f[x->n++] =
      (trb_bq_extra_field_t){"subscription_name", m->subscription, sl, false, 0};
  x->f[x->n++] =
      (trb_bq_extra_field_t){"message_id", m->message_id, il, false, 0};
  /* The time also as microseconds: a TIMESTAMP column takes them without
   * reading the text back (the same value, see format_time). */
  x->f[x->n++] =
      (trb_bq_extra_field_t){"publish_time", x->ts, tsl, has_us, us};
  if (m->n_attrs == 0) {
    x->f[x->n++] = (trb_bq_extra_field_t){"attributes", "{}", 2, false, 0};
    return GRPC_STATUS_OK;
  }
  trb_buf_reset(scratch);
  if (put_attrs_object(scratch, m->attrs, m->n_attrs))
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  x->f[x->n++] = (trb_bq_extra_field_t){"attributes", scratch->data,
                                        scratch->len, false, 0};
  return GRPC_STATUS_OK;
}

const char *trb_dl_stage_name(trb_dl_stage_t s) {
  switch (s) {
    case TRB_DL_PARSE: return "parse";
    case TRB_DL_ROUTE: return "route";
    case TRB_DL_TRANSCODE: return "transcode";
    case TRB_DL_APPEND: return "append";
  }
  return "unknown";
}

const char *trb_dl_split_path(const char *msg, char *path, size_t cap) {
  path[0] = 0;
  if (msg[0] != '$') return msg;
  const char *sep = strstr(msg, ": ");
  if (!sep) return msg;
  size_t n = (size_t)(sep - msg);
  if (n >= cap) n = cap - 1;
  memcpy(path, msg, n);
  path[n] = 0;
  return sep + 2;
}
