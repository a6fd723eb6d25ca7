/*
 * shape.c — rows and dead-letter attributes (see shape.h).
 */
#include "src/streamer/shape.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int put_json_string(trb_buf_t *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  if (trb_buf_reserve(b, n + 2) || trb_buf_append(b, "\"", 1)) return -1;
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    const char *esc = NULL;
    char u[7];
    if (c == '"') esc = "\\\"";
    else if (c == '\\') esc = "\\\\";
    else if (c == '\n') esc = "\\n";
    else if (c == '\r') esc = "\\r";
    else if (c == '\t') esc = "\\t";
    else if (c < 0x20) {
      u[0] = '\\'; u[1] = 'u'; u[2] = '0'; u[3] = '0';
      u[4] = hex[c >> 4]; u[5] = hex[c & 15]; u[6] = 0;
      esc = u;
    }
    if (!esc) continue;
    if (trb_buf_append(b, s + run, i - run) || trb_buf_append_str(b, esc))
      return -1;
    run = i + 1;
  }
  if (trb_buf_append(b, s + run, n - run)) return -1;
  return trb_buf_append(b, "\"", 1);
}

/* "YYYY-MM-DDTHH:MM:SS.ffffffZ" (27 bytes + NUL) for a time in years
 * 0000–9999 (civil-from-days, H. Hinnant), without strftime's locale and
 * time zone work; other times through gmtime_r/strftime. Returns the
 * length. */
static size_t format_time(char ts[64], int64_t sec, int32_t nanos) {
  int64_t micros = nanos / 1000;
  if (sec < -62167219200LL || sec > 253402300799LL || micros < 0 ||
      micros > 999999) {
    time_t t = (time_t)sec;
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t k = strftime(ts, 64, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + k, 64 - k, ".%06dZ", (int)(nanos / 1000));
    return strlen(ts);
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
  *p++ = (char)('0' + y / 1000);
  *p++ = (char)('0' + y / 100 % 10);
  *p++ = (char)('0' + y / 10 % 10);
  *p++ = (char)('0' + y % 10);
  *p++ = '-';
  *p++ = (char)('0' + mo / 10);
  *p++ = (char)('0' + mo % 10);
  *p++ = '-';
  *p++ = (char)('0' + d / 10);
  *p++ = (char)('0' + d % 10);
  *p++ = 'T';
  *p++ = (char)('0' + hh / 10);
  *p++ = (char)('0' + hh % 10);
  *p++ = ':';
  *p++ = (char)('0' + mm / 10);
  *p++ = (char)('0' + mm % 10);
  *p++ = ':';
  *p++ = (char)('0' + ss / 10);
  *p++ = (char)('0' + ss % 10);
  *p++ = '.';
  for (int64_t div = 100000; div > 0; div /= 10)
    *p++ = (char)('0' + micros / div % 10);
  *p++ = 'Z';
  *p = 0;
  return (size_t)(p - ts);
}

/* Append a string literal (its length known at compile time). */
#define PUT_LIT(b, lit) trb_buf_append((b), (lit), sizeof(lit) - 1)

static int put_meta(trb_buf_t *b, const trb_shape_meta_t *m) {
  char ts[64];
  size_t tsl = format_time(ts, m->publish_time_s, m->publish_time_nanos);
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
  int rc = trb_buf_append(&a, "{", 1);
  for (size_t i = 0; rc == 0 && i < m->n_attrs; i++) {
    if (i) rc = trb_buf_append(&a, ",", 1);
    if (!rc) rc = put_json_string(&a, m->attrs[i].key, strlen(m->attrs[i].key));
    if (!rc) rc = trb_buf_append(&a, ":", 1);
    if (!rc)
      rc = put_json_string(&a, m->attrs[i].value, strlen(m->attrs[i].value));
  }
  if (!rc) rc = trb_buf_append(&a, "}", 1);
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
    x->f[x->n++] = (trb_bq_extra_field_t){"payload", (const char *)data, len};
  } else if (write_metadata && !is_object_text(data, len)) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "$: message data is not a JSON object");
  }
  if (!write_metadata) return GRPC_STATUS_OK;
  size_t tsl = format_time(x->ts, m->publish_time_s, m->publish_time_nanos);
  size_t sl = m->subscription_len ? m->subscription_len
                                  : strlen(m->subscription);
  size_t il = m->message_id_len ? m->message_id_len : strlen(m->message_id);
  x->f[x->n++] = (trb_bq_extra_field_t){"subscription_name", m->subscription, sl};
  x->f[x->n++] = (trb_bq_extra_field_t){"message_id", m->message_id, il};
  x->f[x->n++] = (trb_bq_extra_field_t){"publish_time", x->ts, tsl};
  if (m->n_attrs == 0) {
    x->f[x->n++] = (trb_bq_extra_field_t){"attributes", "{}", 2};
    return GRPC_STATUS_OK;
  }
  trb_buf_reset(scratch);
  int rc = trb_buf_append(scratch, "{", 1);
  for (size_t i = 0; rc == 0 && i < m->n_attrs; i++) {
    if (i) rc = trb_buf_append(scratch, ",", 1);
    if (!rc)
      rc = put_json_string(scratch, m->attrs[i].key, strlen(m->attrs[i].key));
    if (!rc) rc = trb_buf_append(scratch, ":", 1);
    if (!rc)
      rc = put_json_string(scratch, m->attrs[i].value,
                           strlen(m->attrs[i].value));
  }
  if (!rc) rc = trb_buf_append(scratch, "}", 1);
  if (rc)
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  x->f[x->n++] =
      (trb_bq_extra_field_t){"attributes", scratch->data, scratch->len};
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
