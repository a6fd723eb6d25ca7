/*
 * envelope.c — see envelope.h.
 */
#include "src/ingest/envelope.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "src/ingest/json_input.h"

void trb_ingest_uuid4_format(const uint8_t rnd[16],
                             char out[TRB_INGEST_UUID_LEN]) {
  static const char hex[] = "0123456789abcdef";
  uint8_t u[16];
  memcpy(u, rnd, 16);
  u[6] = (uint8_t)((u[6] & 0x0F) | 0x40); /* version 4 */
  u[8] = (uint8_t)((u[8] & 0x3F) | 0x80); /* variant 10xx */
  size_t o = 0;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
    out[o++] = hex[u[i] >> 4];
    out[o++] = hex[u[i] & 15];
  }
  out[o] = '\0';
}

void trb_ingest_rfc3339_ms(int64_t wall_us, char out[TRB_INGEST_TIME_LEN]) {
  /* The "YYYY-MM-DDTHH:MM:SS." part is formatted once per second per
   * thread (gmtime_r and snprintf cost more than the rest of a request's
   * envelope). */
  static _Thread_local int64_t cached_secs = INT64_MIN;
  static _Thread_local char prefix[64];
  int64_t secs = wall_us / 1000000;
  int64_t rem_us = wall_us % 1000000;
  if (rem_us < 0) {
    rem_us += 1000000;
    secs--;
  }
  if (secs != cached_secs) {
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(prefix, sizeof(prefix), "%04d-%02d-%02dT%02d:%02d:%02d.",
             (tm.tm_year + 1900) % 10000, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec);
    cached_secs = secs;
  }
  int ms = (int)(rem_us / 1000);
  memcpy(out, prefix, 20);
  out[20] = (char)('0' + ms / 100);
  out[21] = (char)('0' + ms / 10 % 10);
  out[22] = (char)('0' + ms % 10);
  out[23] = 'Z';
  out[24] = '\0';
}

int trb_ingest_envelope_append(trb_buf_t *b, const char *issue_id,
                               const char *source, const char *created_at,
                               const char *payload, size_t payload_len) {
  /* One allocation in the common case: the fixed parts, the strings, and
   * room for a few escapes in the payload. */
  size_t fixed = strlen(issue_id) + strlen(source) + strlen(created_at) + 64;
  if (payload_len <= SIZE_MAX / 2 &&
      trb_buf_reserve(b, fixed + payload_len + payload_len / 16) != 0) {
    return -ENOMEM;
  }
  if (trb_buf_append_str(b, "{\"issue_id\":") != 0 ||
      trb_ingest_json_append_str(b, issue_id, strlen(issue_id)) != 0 ||
      trb_buf_append_str(b, ",\"source\":") != 0 ||
      trb_ingest_json_append_str(b, source, strlen(source)) != 0 ||
      trb_buf_append_str(b, ",\"created_at\":") != 0 ||
      trb_ingest_json_append_str(b, created_at, strlen(created_at)) != 0 ||
      trb_buf_append_str(b, ",\"payload\":") != 0 ||
      trb_ingest_json_append_str(b, payload, payload_len) != 0 ||
      trb_buf_append_str(b, "}") != 0) {
    return -ENOMEM;
  }
  return 0;
}
