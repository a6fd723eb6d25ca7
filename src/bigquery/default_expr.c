/*
 * default_expr.c — column default value expressions (see default_expr.h).
 */
#include "src/bigquery/default_expr.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "src/bigquery/values.h"
#include "src/common/alloc.h"

static const struct {
  const char *name;
  trb_bq_default_kind_t kind;
  trb_bq_type_t type;
} kFns[] = {
    {"CURRENT_TIMESTAMP", TRB_BQ_DEFAULT_CURRENT_TIMESTAMP, TRB_BQ_TYPE_TIMESTAMP},
    {"CURRENT_DATE", TRB_BQ_DEFAULT_CURRENT_DATE, TRB_BQ_TYPE_DATE},
    {"CURRENT_DATETIME", TRB_BQ_DEFAULT_CURRENT_DATETIME, TRB_BQ_TYPE_DATETIME},
    {"CURRENT_TIME", TRB_BQ_DEFAULT_CURRENT_TIME, TRB_BQ_TYPE_TIME},
    {"GENERATE_UUID", TRB_BQ_DEFAULT_GENERATE_UUID, TRB_BQ_TYPE_STRING},
};

static grpc_status_code reject(trb_status_t *st, const char *expr, const trb_bq_field_t *f,
                               const char *why) {
  return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                        "default value expression \"%.100s\" for %s column %s: %s", expr,
                        trb_bq_type_name(f->type), f->name, why);
}

void trb_bq_default_deinit(trb_bq_default_t *d) {
  if (!d) return;
  trb_free(d->text);
  memset(d, 0, sizeof *d);
}

static grpc_status_code set_text(trb_bq_default_t *out, const char *s, size_t n,
                                 trb_status_t *st) {
  out->text = trb_malloc(n + 1);
  if (!out->text) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  memcpy(out->text, s, n);
  out->text[n] = '\0';
  out->text_len = n;
  out->kind = TRB_BQ_DEFAULT_TEXT;
  return GRPC_STATUS_OK;
}

/* Unescape a quoted literal s[0..n) (quotes included) into `buf`. */
static bool unquote(const char *s, size_t n, char *buf, size_t *out_len) {
  char q = s[0];
  if (n < 2 || s[n - 1] != q) return false;
  size_t k = 0;
  for (size_t i = 1; i + 1 < n; i++) {
    char c = s[i];
    if (c == q) return false; /* quote inside: not one literal */
    if (c == '\\') {
      if (i + 2 >= n) return false;
      char e = s[++i];
      switch (e) {
        case '\\': case '\'': case '"': c = e; break;
        case 'n': c = '\n'; break;
        case 't': c = '\t'; break;
        case 'r': c = '\r'; break;
        default: return false;
      }
    }
    buf[k++] = c;
  }
  buf[k] = '\0';
  *out_len = k;
  return true;
}

static size_t utf8_chars(const char *s, size_t n) {
  size_t c = 0;
  for (size_t i = 0; i < n; i++)
    if (((unsigned char)s[i] & 0xC0) != 0x80) c++;
  return c;
}

static grpc_status_code parse_string(const char *expr, const char *s, size_t n,
                                     const trb_bq_field_t *f, trb_bq_default_t *out,
                                     trb_status_t *st) {
  char *buf = trb_malloc(n + 1);
  if (!buf) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  size_t len = 0;
  grpc_status_code c = GRPC_STATUS_OK;
  trb_status_t vst;
  char canon[TRB_BQ_TIMESTAMP_BUF + TRB_BQ_DATETIME_BUF];
  if (!unquote(s, n, buf, &len)) {
    c = reject(st, expr, f, "not one quoted string literal (escapes: \\\\ \\' \\\" \\n \\t \\r)");
    goto out;
  }
  switch (f->type) {
    case TRB_BQ_TYPE_STRING:
      if (f->max_length && (int64_t)utf8_chars(buf, len) > f->max_length) {
        c = reject(st, expr, f, "longer than the column's maxLength");
        break;
      }
      c = set_text(out, buf, len, st);
      break;
    case TRB_BQ_TYPE_DATE: {
      int32_t days;
      if (trb_bq_date_parse(buf, len, &days, &vst) ||
          trb_bq_date_format(days, canon, &vst)) {
        c = reject(st, expr, f, vst.msg);
        break;
      }
      c = set_text(out, canon, strlen(canon), st);
      break;
    }
    case TRB_BQ_TYPE_TIME: {
      int64_t p;
      if (trb_bq_time_parse(buf, len, &p, &vst) || trb_bq_time_format(p, canon, &vst)) {
        c = reject(st, expr, f, vst.msg);
        break;
      }
      c = set_text(out, canon, strlen(canon), st);
      break;
    }
    case TRB_BQ_TYPE_DATETIME: {
      int64_t p;
      if (trb_bq_datetime_parse(buf, len, &p, &vst) ||
          trb_bq_datetime_format(p, canon, &vst)) {
        c = reject(st, expr, f, vst.msg);
        break;
      }
      c = set_text(out, canon, strlen(canon), st);
      break;
    }
    case TRB_BQ_TYPE_TIMESTAMP: {
      int64_t us;
      if (trb_bq_timestamp_parse(buf, len, &us, &vst) ||
          trb_bq_timestamp_format(us, canon, &vst)) {
        c = reject(st, expr, f, vst.msg);
        break;
      }
      c = set_text(out, canon, strlen(canon), st);
      break;
    }
    default:
      c = reject(st, expr, f, "a string literal suits STRING, DATE, TIME, DATETIME and "
                              "TIMESTAMP columns only");
      break;
  }
out:
  trb_free(buf);
  return c;
}

static bool is_number(const char *s, size_t n, bool *integral) {
  size_t i = 0;
  bool digits = false;
  *integral = true;
  if (i < n && (s[i] == '+' || s[i] == '-')) i++;
  while (i < n && isdigit((unsigned char)s[i])) i++, digits = true;
  if (i < n && s[i] == '.') {
    *integral = false;
    i++;
    while (i < n && isdigit((unsigned char)s[i])) i++, digits = true;
  }
  if (!digits) return false;
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    *integral = false;
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    if (i >= n || !isdigit((unsigned char)s[i])) return false;
    while (i < n && isdigit((unsigned char)s[i])) i++;
  }
  return i == n;
}

static grpc_status_code parse_number(const char *expr, const char *s, size_t n,
                                     bool integral, const trb_bq_field_t *f,
                                     trb_bq_default_t *out, trb_status_t *st) {
  char tmp[128];
  if (n >= sizeof tmp) return reject(st, expr, f, "number too long");
  memcpy(tmp, s, n);
  tmp[n] = '\0';
  switch (f->type) {
    case TRB_BQ_TYPE_INT64: {
      if (!integral) return reject(st, expr, f, "an INT64 default must be an integer");
      errno = 0;
      char *end;
      long long x = strtoll(tmp, &end, 10);
      if (errno || *end) return reject(st, expr, f, "out of the INT64 range");
      out->kind = TRB_BQ_DEFAULT_INT;
      out->i = x;
      return GRPC_STATUS_OK;
    }
    case TRB_BQ_TYPE_DOUBLE: {
      char *end;
      double d = strtod(tmp, &end);
      if (*end || !isfinite(d)) return reject(st, expr, f, "out of the FLOAT64 range");
      out->kind = TRB_BQ_DEFAULT_REAL;
      out->d = d;
      return GRPC_STATUS_OK;
    }
    case TRB_BQ_TYPE_NUMERIC:
    case TRB_BQ_TYPE_BIGNUMERIC: {
      char canon[TRB_BQ_NUMERIC_BUF];
      trb_status_t vst;
      if (trb_bq_numeric_canonical(tmp, n, f->type == TRB_BQ_TYPE_BIGNUMERIC, canon,
                                   sizeof canon, &vst))
        return reject(st, expr, f, vst.msg);
      return set_text(out, canon, strlen(canon), st);
    }
    default:
      return reject(st, expr, f, "a number suits INT64, FLOAT64, NUMERIC and BIGNUMERIC "
                                 "columns only");
  }
}

grpc_status_code trb_bq_default_parse(const char *expr, const trb_bq_field_t *f,
                                      trb_bq_default_t *out, trb_status_t *st) {
  memset(out, 0, sizeof *out);
  if (f->mode == TRB_BQ_MODE_REPEATED || f->type == TRB_BQ_TYPE_STRUCT)
    return reject(st, expr, f, "the emulator supports defaults on non-REPEATED, "
                               "non-RECORD columns only");
  const char *s = expr;
  while (isspace((unsigned char)*s)) s++;
  size_t n = strlen(s);
  while (n && isspace((unsigned char)s[n - 1])) n--;
  if (n == 0) return reject(st, expr, f, "empty expression");
  if (n == 4 && strncasecmp(s, "NULL", 4) == 0) {
    if (f->mode == TRB_BQ_MODE_REQUIRED)
      return reject(st, expr, f, "a REQUIRED column cannot default to NULL");
    return GRPC_STATUS_OK;
  }
  if ((n == 4 && strncasecmp(s, "TRUE", 4) == 0) ||
      (n == 5 && strncasecmp(s, "FALSE", 5) == 0)) {
    if (f->type != TRB_BQ_TYPE_BOOL)
      return reject(st, expr, f, "TRUE and FALSE suit BOOL columns only");
    out->kind = TRB_BQ_DEFAULT_INT;
    out->i = n == 4;
    return GRPC_STATUS_OK;
  }
  if (s[0] == '\'' || s[0] == '"') return parse_string(expr, s, n, f, out, st);
  bool integral;
  if (is_number(s, n, &integral)) return parse_number(expr, s, n, integral, f, out, st);
  for (size_t k = 0; k < sizeof kFns / sizeof kFns[0]; k++) {
    size_t m = strlen(kFns[k].name);
    if (n < m + 2 || strncasecmp(s, kFns[k].name, m) != 0) continue;
    size_t i = m;
    while (i < n && isspace((unsigned char)s[i])) i++;
    if (i >= n || s[i++] != '(') continue;
    while (i < n && isspace((unsigned char)s[i])) i++;
    if (i + 1 != n || s[i] != ')') continue;
    if (f->type != kFns[k].type) {
      char why[96];
      snprintf(why, sizeof why, "%s() returns %s", kFns[k].name,
               trb_bq_type_name(kFns[k].type));
      return reject(st, expr, f, why);
    }
    out->kind = kFns[k].kind;
    return GRPC_STATUS_OK;
  }
  return reject(st, expr, f, "the emulator accepts literal defaults only: a number, a "
                             "quoted string, TRUE, FALSE, NULL, CURRENT_TIMESTAMP(), "
                             "CURRENT_DATE(), CURRENT_DATETIME(), CURRENT_TIME() or "
                             "GENERATE_UUID()");
}

size_t trb_bq_default_eval_fn(trb_bq_default_kind_t kind, int64_t now_us,
                              const uint8_t *rnd, char *out) {
  out[0] = '\0';
  if (kind == TRB_BQ_DEFAULT_GENERATE_UUID) {
    if (!rnd) return 0;
    uint8_t b[16];
    memcpy(b, rnd, 16);
    b[6] = (uint8_t)((b[6] & 0x0F) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3F) | 0x80); /* RFC 4122 variant */
    static const char hex[] = "0123456789abcdef";
    size_t k = 0;
    for (int i = 0; i < 16; i++) {
      if (i == 4 || i == 6 || i == 8 || i == 10) out[k++] = '-';
      out[k++] = hex[b[i] >> 4];
      out[k++] = hex[b[i] & 15];
    }
    out[k] = '\0';
    return k;
  }
  if (now_us < TRB_BQ_TIMESTAMP_MIN_US || now_us > TRB_BQ_TIMESTAMP_MAX_US) return 0;
  int64_t days = now_us >= 0 ? now_us / 86400000000LL
                             : -((-now_us + 86400000000LL - 1) / 86400000000LL);
  int64_t tod = now_us - days * 86400000000LL; /* microseconds into the day */
  unsigned h = (unsigned)(tod / 3600000000LL), mi = (unsigned)(tod / 60000000LL % 60),
           sec = (unsigned)(tod / 1000000 % 60), us = (unsigned)(tod % 1000000);
  int64_t y;
  unsigned mo, d;
  trb_bq_civil_from_days(days, &y, &mo, &d);
  grpc_status_code c;
  switch (kind) {
    case TRB_BQ_DEFAULT_CURRENT_TIMESTAMP: c = trb_bq_timestamp_format(now_us, out, NULL); break;
    case TRB_BQ_DEFAULT_CURRENT_DATE: c = trb_bq_date_format(days, out, NULL); break;
    case TRB_BQ_DEFAULT_CURRENT_TIME:
      c = trb_bq_time_format(trb_bq_time_pack(h, mi, sec, us), out, NULL);
      break;
    case TRB_BQ_DEFAULT_CURRENT_DATETIME:
      c = trb_bq_datetime_format(trb_bq_datetime_pack((unsigned)y, mo, d, h, mi, sec, us), out,
                                 NULL);
      break;
    default: return 0;
  }
  return c == GRPC_STATUS_OK ? strlen(out) : 0;
}
