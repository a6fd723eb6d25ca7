/* codec.c — see codec.h. Pure: no I/O, no state. */
#include "src/emulator/pubsub/codec.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

grpc_status_code trb_ps_name_parse(const char *name, const char *kind,
                                   const char *what, const char **project,
                                   size_t *project_len, const char **id,
                                   trb_status_t *st) {
  if (name == NULL || name[0] == '\0') {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "%s: a resource name is required", what);
  }
  static const char kProjects[] = "projects/";
  if (strncmp(name, kProjects, sizeof(kProjects) - 1) != 0) {
    goto bad;
  }
  const char *p = name + sizeof(kProjects) - 1;
  const char *slash = strchr(p, '/');
  if (slash == NULL || slash == p) {
    goto bad;
  }
  size_t klen = strlen(kind);
  if (strncmp(slash + 1, kind, klen) != 0 || slash[1 + klen] != '/') {
    goto bad;
  }
  const char *rid = slash + 2 + klen;
  size_t n = strlen(rid);
  if (n < 3 || n > 255) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "%s: invalid resource name \"%s\": the %s id must "
                          "be 3 to 255 characters long",
                          what, name, what);
  }
  if (!((rid[0] >= 'a' && rid[0] <= 'z') || (rid[0] >= 'A' && rid[0] <= 'Z'))) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "%s: invalid resource name \"%s\": the %s id must "
                          "start with a letter",
                          what, name, what);
  }
  if (strncmp(rid, "goog", 4) == 0) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "%s: invalid resource name \"%s\": the %s id must "
                          "not start with \"goog\"",
                          what, name, what);
  }
  for (size_t i = 0; i < n; i++) {
    char c = rid[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
              c == '~' || c == '+' || c == '%';
    if (!ok) {
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "%s: invalid resource name \"%s\": character "
                            "'%c' is not allowed in a %s id",
                            what, name, c, what);
    }
  }
  if (project) *project = p;
  if (project_len) *project_len = (size_t)(slash - p);
  if (id) *id = rid;
  return GRPC_STATUS_OK;
bad:
  return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                        "%s: invalid resource name \"%s\": expected "
                        "projects/{project}/%s/{id}",
                        what, name, kind);
}

static const char kHex[] = "0123456789abcdef";

static size_t put_hex(char *out, uint64_t v) {
  char tmp[16];
  size_t n = 0;
  do {
    tmp[n++] = kHex[v & 15];
    v >>= 4;
  } while (v != 0);
  for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
  return n;
}

size_t trb_ps_ackid_format(const trb_ps_ackid_t *a, char *out) {
  size_t n = 0;
  n += put_hex(out + n, (uint64_t)a->sub_id);
  out[n++] = '-';
  n += put_hex(out + n, (uint64_t)a->seq);
  out[n++] = '-';
  n += put_hex(out + n, a->gen);
  out[n++] = '-';
  n += put_hex(out + n, a->epoch);
  out[n] = '\0';
  return n;
}

/* Parse lower-case hex up to `stop` ('\0' or '-'); max `maxd` digits, no
 * leading zeros (canonical form only). */
static bool get_hex(const char **s, char stop, int maxd, uint64_t *v) {
  const char *p = *s;
  uint64_t x = 0;
  int d = 0;
  while (*p != stop) {
    char c = *p;
    int h;
    if (c >= '0' && c <= '9') {
      h = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      h = c - 'a' + 10;
    } else {
      return false;
    }
    if (d == 1 && x == 0) return false; /* leading zero */
    if (++d > maxd) return false;
    x = (x << 4) | (uint64_t)h;
    p++;
  }
  if (d == 0) return false;
  *v = x;
  *s = stop == '\0' ? p : p + 1;
  return true;
}

bool trb_ps_ackid_parse(const char *s, trb_ps_ackid_t *out) {
  if (s == NULL) return false;
  uint64_t sub, seq, gen, epoch;
  if (!get_hex(&s, '-', 15, &sub) || !get_hex(&s, '-', 15, &seq) ||
      !get_hex(&s, '-', 8, &gen) || !get_hex(&s, '\0', 8, &epoch)) {
    return false;
  }
  out->sub_id = (int64_t)sub;
  out->seq = (int64_t)seq;
  out->gen = (uint32_t)gen;
  out->epoch = (uint32_t)epoch;
  return true;
}

size_t trb_ps_wire_varint_len(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

int trb_ps_wire_varint(trb_buf_t *b, uint64_t v) {
  if (trb_buf_reserve(b, 10) != 0) return -ENOMEM;
  uint8_t *p = (uint8_t *)b->data + b->len;
  size_t n = 0;
  while (v >= 0x80) {
    p[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  p[n++] = (uint8_t)v;
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int trb_ps_wire_bytes(trb_buf_t *b, uint32_t field, const void *data,
                      size_t len) {
  if (trb_buf_reserve(b, 20 + len) != 0) return -ENOMEM;
  trb_ps_wire_varint(b, ((uint64_t)field << 3) | 2);
  trb_ps_wire_varint(b, len);
  return trb_buf_append(b, data, len);
}

int trb_ps_wire_uint(trb_buf_t *b, uint32_t field, uint64_t v) {
  if (trb_buf_reserve(b, 20) != 0) return -ENOMEM;
  trb_ps_wire_varint(b, (uint64_t)field << 3);
  return trb_ps_wire_varint(b, v);
}

static size_t received_body_len(size_t ack_len, size_t msg_len,
                                int32_t attempt) {
  size_t n = 1 + trb_ps_wire_varint_len(ack_len) + ack_len;
  n += 1 + trb_ps_wire_varint_len(msg_len) + msg_len;
  if (attempt != 0) n += 1 + trb_ps_wire_varint_len((uint64_t)(int64_t)attempt);
  return n;
}

size_t trb_ps_wire_received_len(size_t ack_len, size_t msg_len,
                                int32_t delivery_attempt) {
  size_t body = received_body_len(ack_len, msg_len, delivery_attempt);
  return 1 + trb_ps_wire_varint_len(body) + body;
}

int trb_ps_wire_received(trb_buf_t *b, const char *ack_id, size_t ack_len,
                         const uint8_t *msg, size_t msg_len,
                         int32_t delivery_attempt) {
  size_t body = received_body_len(ack_len, msg_len, delivery_attempt);
  if (trb_buf_reserve(b, body + 12) != 0) return -ENOMEM;
  trb_ps_wire_varint(b, (1u << 3) | 2);
  trb_ps_wire_varint(b, body);
  trb_ps_wire_bytes(b, 1, ack_id, ack_len);
  trb_ps_wire_bytes(b, 2, msg, msg_len);
  if (delivery_attempt != 0) {
    trb_ps_wire_uint(b, 3, (uint64_t)(int64_t)delivery_attempt);
  }
  return 0;
}

void trb_ps_rfc3339(int64_t wall_us, char *out, size_t out_len) {
  time_t secs = (time_t)(wall_us / 1000000);
  int64_t us = wall_us % 1000000;
  if (us < 0) {
    us += 1000000;
    secs -= 1;
  }
  struct tm tm;
  gmtime_r(&secs, &tm);
  snprintf(out, out_len, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
           tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
           tm.tm_min, tm.tm_sec, (int)us);
}
