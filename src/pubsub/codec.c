/* codec.c — see codec.h. */
#include "src/pubsub/codec.h"

#include <stdbool.h>
#include <string.h>

#include "src/common/varint.h"

size_t trb_ps_varint_len(uint64_t v) { return trb_varint_len(v); }

/* Length-delimited field: tag (field << 3 | 2), length, body. Field numbers
 * here are < 16, so the tag is one byte. */
static size_t ld_cost(size_t len) { return 1 + trb_ps_varint_len(len) + len; }

static uint8_t *put_ld(uint8_t *p, unsigned field, const void *body,
                       size_t len) {
  *p++ = (uint8_t)((field << 3) | 2);
  p = trb_varint_put(p, len);
  if (len > 0) memcpy(p, body, len);
  return p + len;
}

static size_t entry_len(const trb_ps_attr_t *a) {
  size_t kl = strlen(a->key), vl = a->value ? strlen(a->value) : 0;
  return ld_cost(kl) + ld_cost(vl);
}

size_t trb_ps_msg_encoded_len(const uint8_t *data, size_t data_len,
                              const trb_ps_attr_t *attrs, size_t n_attrs,
                              const char *ordering_key) {
  (void)data;
  size_t n = data_len > 0 ? ld_cost(data_len) : 0;
  for (size_t i = 0; i < n_attrs; i++) n += ld_cost(entry_len(&attrs[i]));
  size_t kl = ordering_key ? strlen(ordering_key) : 0;
  if (kl > 0) n += ld_cost(kl);
  return n;
}

size_t trb_ps_msg_encode(uint8_t *out, const uint8_t *data, size_t data_len,
                         const trb_ps_attr_t *attrs, size_t n_attrs,
                         const char *ordering_key) {
  uint8_t *p = out;
  if (data_len > 0) p = put_ld(p, 1, data, data_len);
  for (size_t i = 0; i < n_attrs; i++) {
    const char *v = attrs[i].value ? attrs[i].value : "";
    *p++ = (uint8_t)((2 << 3) | 2);
    p = trb_varint_put(p, entry_len(&attrs[i]));
    p = put_ld(p, 1, attrs[i].key, strlen(attrs[i].key));
    p = put_ld(p, 2, v, strlen(v));
  }
  size_t kl = ordering_key ? strlen(ordering_key) : 0;
  if (kl > 0) p = put_ld(p, 5, ordering_key, kl);
  return (size_t)(p - out);
}

size_t trb_ps_request_msg_cost(size_t msg_len) { return ld_cost(msg_len); }

size_t trb_ps_request_topic_cost(const char *topic) {
  return ld_cost(strlen(topic));
}

size_t trb_ps_request_encode(uint8_t *out, const char *topic,
                             const uint8_t *const *msgs, const size_t *lens,
                             size_t n) {
  uint8_t *p = put_ld(out, 1, topic, strlen(topic));
  for (size_t i = 0; i < n; i++) p = put_ld(p, 2, msgs[i], lens[i]);
  return (size_t)(p - out);
}

size_t trb_ps_request_put_topic(uint8_t *out, const char *topic) {
  return (size_t)(put_ld(out, 1, topic, strlen(topic)) - out);
}

size_t trb_ps_request_put_msg_header(uint8_t *out, size_t msg_len) {
  uint8_t *p = out;
  *p++ = (uint8_t)((2 << 3) | 2);
  p = trb_varint_put(p, msg_len);
  return (size_t)(p - out);
}

static bool get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v) {
  uint64_t r = 0;
  for (unsigned shift = 0; shift < 64; shift += 7) {
    if (*pp >= end) return false;
    uint8_t b = *(*pp)++;
    r |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = r;
      return true;
    }
  }
  return false;
}

grpc_status_code trb_ps_response_ids(const uint8_t *buf, size_t len,
                                     void (*fn)(void *user, size_t i,
                                                const char *id, size_t id_len),
                                     void *user, size_t *n_ids,
                                     trb_status_t *st) {
  const uint8_t *p = buf, *end = buf + len;
  size_t n = 0;
  while (p < end) {
    uint64_t key, v;
    if (!get_varint(&p, end, &key)) goto bad;
    switch (key & 7) {
      case 0:
        if (!get_varint(&p, end, &v)) goto bad;
        break;
      case 1:
        if (end - p < 8) goto bad;
        p += 8;
        break;
      case 5:
        if (end - p < 4) goto bad;
        p += 4;
        break;
      case 2:
        if (!get_varint(&p, end, &v) || v > (uint64_t)(end - p)) goto bad;
        if ((key >> 3) == 1) {
          if (fn) fn(user, n, (const char *)p, (size_t)v);
          n++;
        }
        p += v;
        break;
      default:
        goto bad;
    }
  }
  *n_ids = n;
  return GRPC_STATUS_OK;
bad:
  return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                        "malformed PublishResponse");
}
