/*
 * values.c — BigQuery value encodings (see values.h). Pure; no allocation.
 */
#include "src/bigquery/values.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* ---- civil dates (proleptic Gregorian; H. Hinnant's algorithms) -------- */

int64_t trb_bq_days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = (unsigned)(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

void trb_bq_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = (unsigned)(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool is_leap(int64_t y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int64_t y, unsigned m) {
  static const unsigned k[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : k[m - 1];
}

static bool valid_date(int64_t y, unsigned m, unsigned d) {
  return y >= 1 && y <= 9999 && m >= 1 && m <= 12 && d >= 1 &&
         d <= days_in_month(y, m);
}

/* Read exactly `n` decimal digits at s[*i]. */
static bool digits(const char *s, size_t len, size_t *i, int n, unsigned *v) {
  unsigned x = 0;
  for (int k = 0; k < n; k++) {
    if (*i >= len || s[*i] < '0' || s[*i] > '9') return false;
    x = x * 10 + (unsigned)(s[*i] - '0');
    (*i)++;
  }
  *v = x;
  return true;
}

static bool lit(const char *s, size_t len, size_t *i, char c) {
  if (*i >= len || s[*i] != c) return false;
  (*i)++;
  return true;
}

/* Shorten a value for an error message. */
static int shown(size_t len) { return len > 64 ? 64 : (int)len; }

/* "YYYY-MM-DD" at s[*i]. */
static bool parse_ymd(const char *s, size_t len, size_t *i, unsigned *y,
                      unsigned *m, unsigned *d) {
  return digits(s, len, i, 4, y) && lit(s, len, i, '-') &&
         digits(s, len, i, 2, m) && lit(s, len, i, '-') &&
         digits(s, len, i, 2, d) && valid_date(*y, *m, *d);
}

/* "HH:MM:SS[.f{1,maxf}]" at s[*i]; *us gets microseconds; digits beyond
 * the sixth must be zero. */
static bool parse_hms(const char *s, size_t len, size_t *i, unsigned *h,
                      unsigned *mi, unsigned *sec, unsigned *us, int maxf) {
  if (!(digits(s, len, i, 2, h) && lit(s, len, i, ':') &&
        digits(s, len, i, 2, mi) && lit(s, len, i, ':') &&
        digits(s, len, i, 2, sec)))
    return false;
  if (*h > 23 || *mi > 59 || *sec > 59) return false;
  *us = 0;
  if (*i < len && s[*i] == '.') {
    (*i)++;
    int n = 0;
    unsigned frac = 0;
    while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
      if (n >= maxf) return false;
      if (n < 6) {
        frac = frac * 10 + (unsigned)(s[*i] - '0');
      } else if (s[*i] != '0') {
        return false;
      }
      n++;
      (*i)++;
    }
    if (n == 0) return false;
    for (int k = n; k < 6; k++) frac *= 10;
    *us = frac;
  }
  return true;
}

grpc_status_code trb_bq_date_format(int64_t days, char *out,
                                    trb_status_t *st) {
  if (days < TRB_BQ_DATE_MIN || days > TRB_BQ_DATE_MAX) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "DATE value %" PRId64
                          " is out of range [-719162, 2932896] (days since "
                          "1970-01-01)",
                          days);
  }
  int64_t y;
  unsigned m, d;
  trb_bq_civil_from_days(days, &y, &m, &d);
  snprintf(out, TRB_BQ_DATE_BUF, "%04d-%02u-%02u", (int)y, m, d);
  return GRPC_STATUS_OK;
}

grpc_status_code trb_bq_date_parse(const char *s, size_t len, int32_t *days,
                                   trb_status_t *st) {
  size_t i = 0;
  unsigned y, m, d;
  if (!parse_ymd(s, len, &i, &y, &m, &d) || i != len) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "invalid DATE \"%.*s\": want YYYY-MM-DD between "
                          "0001-01-01 and 9999-12-31",
                          shown(len), s);
  }
  *days = (int32_t)trb_bq_days_from_civil(y, m, d);
  return GRPC_STATUS_OK;
}

int64_t trb_bq_time_pack(unsigned h, unsigned mi, unsigned s, unsigned us) {
  return ((int64_t)(h << 12 | mi << 6 | s) << 20) | (int64_t)us;
}

int64_t trb_bq_datetime_pack(unsigned y, unsigned mo, unsigned d, unsigned h,
                             unsigned mi, unsigned s, unsigned us) {
  uint64_t hi = (uint64_t)y << 26 | (uint64_t)mo << 22 | (uint64_t)d << 17 |
                (uint64_t)h << 12 | (uint64_t)mi << 6 | s;
  return (int64_t)(hi << 20 | us);
}

static bool unpack_time(uint64_t v, unsigned *h, unsigned *mi, unsigned *s,
                        unsigned *us) {
  *us = (unsigned)(v & 0xFFFFF);
  *s = (unsigned)(v >> 20 & 0x3F);
  *mi = (unsigned)(v >> 26 & 0x3F);
  *h = (unsigned)(v >> 32 & 0x1F);
  return *us < 1000000 && *s < 60 && *mi < 60 && *h < 24;
}

static void put_hms(char *out, size_t cap, unsigned h, unsigned mi, unsigned s,
                    unsigned us) {
  if (us) {
    snprintf(out, cap, "%02u:%02u:%02u.%06u", h, mi, s, us);
  } else {
    snprintf(out, cap, "%02u:%02u:%02u", h, mi, s);
  }
}

grpc_status_code trb_bq_time_format(int64_t packed, char *out,
                                    trb_status_t *st) {
  unsigned h, mi, s, us;
  uint64_t v = (uint64_t)packed;
  if (packed < 0 || (v >> 37) != 0 || !unpack_time(v, &h, &mi, &s, &us)) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "invalid packed TIME value %" PRId64, packed);
  }
  put_hms(out, TRB_BQ_TIME_BUF, h, mi, s, us);
  return GRPC_STATUS_OK;
}

grpc_status_code trb_bq_time_parse(const char *s, size_t len, int64_t *packed,
                                   trb_status_t *st) {
  size_t i = 0;
  unsigned h, mi, sec, us;
  if (!parse_hms(s, len, &i, &h, &mi, &sec, &us, 6) || i != len) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "invalid TIME \"%.*s\": want HH:MM:SS[.ffffff]",
                          shown(len), s);
  }
  *packed = trb_bq_time_pack(h, mi, sec, us);
  return GRPC_STATUS_OK;
}

grpc_status_code trb_bq_datetime_format(int64_t packed, char *out,
                                        trb_status_t *st) {
  unsigned h, mi, s, us;
  uint64_t v = (uint64_t)packed;
  unsigned y = (unsigned)(v >> 46 & 0x3FFF);
  unsigned mo = (unsigned)(v >> 42 & 0xF);
  unsigned d = (unsigned)(v >> 37 & 0x1F);
  if (packed < 0 || (v >> 60) != 0 || !unpack_time(v, &h, &mi, &s, &us) ||
      !valid_date(y, mo, d)) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "invalid packed DATETIME value %" PRId64, packed);
  }
  int n = snprintf(out, TRB_BQ_DATETIME_BUF, "%04u-%02u-%02uT", y, mo, d);
  put_hms(out + n, (size_t)(TRB_BQ_DATETIME_BUF - n), h, mi, s, us);
  return GRPC_STATUS_OK;
}

grpc_status_code trb_bq_datetime_parse(const char *s, size_t len,
                                       int64_t *packed, trb_status_t *st) {
  size_t i = 0;
  unsigned y, mo, d, h, mi, sec, us;
  if (!parse_ymd(s, len, &i, &y, &mo, &d) || i >= len ||
      (s[i] != 'T' && s[i] != 't' && s[i] != ' ') ||
      (i++, !parse_hms(s, len, &i, &h, &mi, &sec, &us, 6)) || i != len) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "invalid DATETIME \"%.*s\": want "
                          "YYYY-MM-DDTHH:MM:SS[.ffffff]",
                          shown(len), s);
  }
  *packed = trb_bq_datetime_pack(y, mo, d, h, mi, sec, us);
  return GRPC_STATUS_OK;
}

grpc_status_code trb_bq_timestamp_format(int64_t us, char *out,
                                         trb_status_t *st) {
  if (us < TRB_BQ_TIMESTAMP_MIN_US || us > TRB_BQ_TIMESTAMP_MAX_US) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "TIMESTAMP value %" PRId64
                          " is out of range (microseconds since the epoch, "
                          "0001-01-01 .. 9999-12-31)",
                          us);
  }
  int64_t days = us / 86400000000LL;
  int64_t rem = us % 86400000000LL;
  if (rem < 0) {
    rem += 86400000000LL;
    days--;
  }
  int64_t y;
  unsigned m, d;
  trb_bq_civil_from_days(days, &y, &m, &d);
  unsigned secs = (unsigned)(rem / 1000000);
  snprintf(out, TRB_BQ_TIMESTAMP_BUF, "%04d-%02u-%02uT%02u:%02u:%02u.%06uZ",
           (int)y, m, d, secs / 3600, secs / 60 % 60, secs % 60,
           (unsigned)(rem % 1000000));
  return GRPC_STATUS_OK;
}

grpc_status_code trb_bq_timestamp_parse(const char *s, size_t len,
                                        int64_t *us, trb_status_t *st) {
  size_t i = 0;
  unsigned y, mo, d, h, mi, sec, frac;
  int64_t off_s = 0;
  bool ok = parse_ymd(s, len, &i, &y, &mo, &d) && i < len &&
            (s[i] == 'T' || s[i] == 't' || s[i] == ' ');
  if (ok) {
    i++;
    ok = parse_hms(s, len, &i, &h, &mi, &sec, &frac, 9) && i < len;
  }
  if (ok) {
    if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == len) {
      i++;
    } else if (s[i] == '+' || s[i] == '-') {
      int sign = s[i] == '-' ? -1 : 1;
      unsigned oh, om;
      i++;
      ok = digits(s, len, &i, 2, &oh) && lit(s, len, &i, ':') &&
           digits(s, len, &i, 2, &om) && oh < 24 && om < 60 && i == len;
      off_s = sign * (int64_t)(oh * 3600 + om * 60);
    } else {
      ok = false;
    }
  }
  if (!ok) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "invalid TIMESTAMP \"%.*s\": want RFC 3339 "
                          "(YYYY-MM-DDTHH:MM:SS[.ffffff]Z or ±HH:MM offset)",
                          shown(len), s);
  }
  int64_t days = trb_bq_days_from_civil(y, mo, d);
  int64_t v = (days * 86400 + h * 3600 + mi * 60 + sec - off_s) * 1000000LL +
              frac;
  if (v < TRB_BQ_TIMESTAMP_MIN_US || v > TRB_BQ_TIMESTAMP_MAX_US) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "TIMESTAMP \"%.*s\" is out of range "
                          "(0001-01-01 .. 9999-12-31 UTC)",
                          shown(len), s);
  }
  *us = v;
  return GRPC_STATUS_OK;
}

/* ---- NUMERIC / BIGNUMERIC ---------------------------------------------- */

/* Magnitudes as 9 little-endian 32-bit limbs (288 bits, room to detect
 * overflow past 256). */
#define LIMBS 9

static bool mag_is_zero(const uint32_t *x) {
  for (int i = 0; i < LIMBS; i++)
    if (x[i]) return false;
  return true;
}

/* x = x * 10 + d; returns false on overflow past 288 bits. */
static bool mag_mul10_add(uint32_t *x, unsigned d) {
  uint64_t carry = d;
  for (int i = 0; i < LIMBS; i++) {
    uint64_t t = (uint64_t)x[i] * 10 + carry;
    x[i] = (uint32_t)t;
    carry = t >> 32;
  }
  return carry == 0;
}

/* x /= 10; returns the remainder. */
static unsigned mag_div10(uint32_t *x) {
  uint64_t rem = 0;
  for (int i = LIMBS - 1; i >= 0; i--) {
    uint64_t cur = rem << 32 | x[i];
    x[i] = (uint32_t)(cur / 10);
    rem = cur % 10;
  }
  return (unsigned)rem;
}

static bool mag_add1(uint32_t *x) {
  for (int i = 0; i < LIMBS; i++) {
    if (++x[i] != 0) return true;
  }
  return false;
}

/* Decimal digits of x (destroys x), most significant first, into d. */
static int mag_digits(uint32_t *x, char *d, int cap) {
  char tmp[96];
  int n = 0;
  do {
    tmp[n++] = (char)('0' + mag_div10(x));
  } while (!mag_is_zero(x) && n < (int)sizeof tmp);
  if (n > cap) return -1;
  for (int i = 0; i < n; i++) d[i] = tmp[n - 1 - i];
  return n;
}

/* 10^38 as limbs, the NUMERIC bound on the unscaled magnitude. */
static bool numeric_in_range(const uint32_t *x) {
  uint32_t t[LIMBS];
  memcpy(t, x, sizeof t);
  char d[96];
  return mag_digits(t, d, sizeof d) <= 38;
}

/* Magnitude within 2^255 (neg) or 2^255 - 1 (pos)? */
static bool bignumeric_in_range(const uint32_t *x, bool neg) {
  if (x[8] != 0) return false;
  if (x[7] < 0x80000000u) return true;
  if (!neg) return false;
  if (x[7] != 0x80000000u) return false;
  for (int i = 0; i < 7; i++)
    if (x[i]) return false;
  return true;
}

grpc_status_code trb_bq_numeric_format(const uint8_t *le, size_t len,
                                       bool big, char *out, size_t cap,
                                       trb_status_t *st) {
  const char *tname = big ? "BIGNUMERIC" : "NUMERIC";
  size_t max = big ? 32 : 16;
  if (len == 0 || len > max) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "%s value has %zu bytes; want 1..%zu", tname, len,
                          max);
  }
  uint8_t b[32];
  bool neg = (le[len - 1] & 0x80) != 0;
  memset(b, neg ? 0xFF : 0x00, sizeof b);
  memcpy(b, le, len);
  if (neg) { /* two's complement -> magnitude */
    unsigned carry = 1;
    for (int i = 0; i < 32; i++) {
      unsigned v = (uint8_t)~b[i] + carry;
      b[i] = (uint8_t)v;
      carry = v >> 8;
    }
  }
  uint32_t x[LIMBS] = {0};
  for (int i = 0; i < 32; i++) x[i / 4] |= (uint32_t)b[i] << (8 * (i % 4));
  if (!big && !numeric_in_range(x)) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "NUMERIC value is out of range (at most 29 integer "
                          "and 9 fraction digits)");
  }
  int scale = big ? TRB_BQ_BIGNUMERIC_SCALE : TRB_BQ_NUMERIC_SCALE;
  char d[96];
  int n = mag_digits(x, d, sizeof d);
  /* Pad to at least scale + 1 digits. */
  char p[128];
  int pad = n < scale + 1 ? scale + 1 - n : 0;
  memset(p, '0', (size_t)pad);
  memcpy(p + pad, d, (size_t)n);
  n += pad;
  int intd = n - scale;
  int fend = n;
  while (fend > intd && p[fend - 1] == '0') fend--;
  bool is_zero = intd == 1 && p[0] == '0' && fend == intd;
  size_t need = (neg && !is_zero ? 1 : 0) + (size_t)intd +
                (fend > intd ? (size_t)(fend - intd) + 1 : 0) + 1;
  if (need > cap) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "%s text needs %zu bytes, buffer has %zu", tname,
                          need, cap);
  }
  char *o = out;
  if (neg && !is_zero) *o++ = '-';
  memcpy(o, p, (size_t)intd);
  o += intd;
  if (fend > intd) {
    *o++ = '.';
    memcpy(o, p + intd, (size_t)(fend - intd));
    o += fend - intd;
  }
  *o = '\0';
  return GRPC_STATUS_OK;
}

grpc_status_code trb_bq_numeric_parse(const char *s, size_t len, bool big,
                                      uint8_t *out, size_t *out_len,
                                      trb_status_t *st) {
  const char *tname = big ? "BIGNUMERIC" : "NUMERIC";
  int scale = big ? TRB_BQ_BIGNUMERIC_SCALE : TRB_BQ_NUMERIC_SCALE;
  size_t i = 0;
  bool neg = false;
  if (i < len && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
  /* Collect significant digits and the decimal exponent. */
  char dig[200];
  int nd = 0;
  long exp10 = 0;
  bool dot = false, any = false;
  for (; i < len; i++) {
    char c = s[i];
    if (c >= '0' && c <= '9') {
      any = true;
      if (nd == 0 && c == '0') {
        if (dot) exp10--;
        continue;
      }
      if (nd >= (int)sizeof dig) goto bad;
      dig[nd++] = c;
      if (dot) exp10--;
    } else if (c == '.' && !dot) {
      dot = true;
    } else {
      break;
    }
  }
  if (!any) goto bad;
  if (i < len && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    bool eneg = false;
    if (i < len && (s[i] == '+' || s[i] == '-')) eneg = s[i++] == '-';
    long e = 0;
    bool edig = false;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
      if (e < 100000) e = e * 10 + (s[i] - '0');
      i++;
      edig = true;
    }
    if (!edig) goto bad;
    exp10 += eneg ? -e : e;
  }
  if (i != len) goto bad;
  /* value = dig * 10^exp10; unscaled = value * 10^scale. */
  long shift = exp10 + scale;
  uint32_t x[LIMBS] = {0};
  int keep = nd;
  bool round_up = false;
  if (shift < 0) {
    long drop = -shift;
    if (drop > nd) {
      keep = 0; /* below half a unit of the last place */
    } else {
      keep = nd - (int)drop;
      round_up = drop > 0 && dig[keep] >= '5';
    }
    shift = 0;
  }
  if (nd > 0 && shift > 120) goto range;
  for (int k = 0; k < keep; k++) {
    if (!mag_mul10_add(x, (unsigned)(dig[k] - '0'))) goto range;
  }
  for (long k = 0; k < shift && nd > 0; k++) {
    if (!mag_mul10_add(x, 0)) goto range;
  }
  if (round_up && !mag_add1(x)) goto range;
  if (big ? !bignumeric_in_range(x, neg) : !numeric_in_range(x)) goto range;
  if (mag_is_zero(x)) neg = false;
  /* magnitude -> two's complement bytes */
  uint8_t b[36];
  for (int k = 0; k < 36; k++) b[k] = (uint8_t)(x[k / 4] >> (8 * (k % 4)));
  if (neg) {
    unsigned carry = 1;
    for (int k = 0; k < 36; k++) {
      unsigned v = (uint8_t)~b[k] + carry;
      b[k] = (uint8_t)v;
      carry = v >> 8;
    }
  }
  size_t n = 32;
  while (n > 1) {
    uint8_t top = b[n - 1], next = b[n - 2];
    if ((top == 0x00 && !(next & 0x80)) || (top == 0xFF && (next & 0x80))) {
      n--;
    } else {
      break;
    }
  }
  memcpy(out, b, n);
  *out_len = n;
  return GRPC_STATUS_OK;
bad:
  return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                        "invalid %s \"%.*s\": want a decimal number", tname,
                        shown(len), s);
range:
  return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                        "%s \"%.*s\" is out of range", tname, shown(len), s);
}

grpc_status_code trb_bq_numeric_canonical(const char *s, size_t len, bool big,
                                          char *out, size_t cap,
                                          trb_status_t *st) {
  uint8_t b[TRB_BQ_NUMERIC_BYTES_MAX];
  size_t n;
  grpc_status_code c = trb_bq_numeric_parse(s, len, big, b, &n, st);
  if (c != GRPC_STATUS_OK) return c;
  return trb_bq_numeric_format(b, n, big, out, cap, st);
}
