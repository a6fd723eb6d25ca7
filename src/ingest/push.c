/*
 * push.c — see push.h.
 */
#include "src/ingest/push.h"

#include <string.h>

#include "src/common/alloc.h"

/* Pub/Sub attribute limits (PROTOCOL.md fact 46). */
#define ATTR_KEY_MAX 256
#define ATTR_VALUE_MAX 1024


static int b64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

int64_t trb_ingest_base64_decode(const char *s, size_t len, uint8_t *out) {
  /* Strip up to two '=' of padding; then the length must leave 0, 2 or 3
   * characters in the last quantum. */
  size_t n = len;
  if (len % 4 == 0 && n > 0 && s[n - 1] == '=') n--;
  if (len % 4 == 0 && n > 0 && s[n - 1] == '=') n--;
  if (n % 4 == 1) return -1;
  if (n != len && (len % 4 != 0 || n % 4 == 0)) return -1;
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64_value((unsigned char)s[i]);
    if (v < 0) return -1;
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (uint8_t)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  if (acc != 0) return -1; /* non-zero trailing bits */
  return (int64_t)o;
}

static const char *str_member(const json_t *o, const char *a, const char *b) {
  const json_t *v = json_object_get(o, a);
  if (!v && b) v = json_object_get(o, b);
  return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool is_pubsub_message_type(const json_t *o) {
  const char *t = str_member(o, "@type", NULL);
  return t && strstr(t, "google.pubsub.v1.PubsubMessage") != NULL;
}

grpc_status_code trb_ingest_push_decode(const json_t *root,
                                        trb_ingest_push_msg_t *out,
                                        trb_status_t *st) {
  if (!json_is_object(root)) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "push body is not a JSON object");
  }
  const json_t *wrapper = root;
  const json_t *msg = json_object_get(root, "message");
  if (!msg) {
    const json_t *data = json_object_get(root, "data");
    if (json_is_object(data) && json_is_object(json_object_get(data, "message"))) {
      wrapper = data; /* structured CloudEvent: MessagePublishedData */
      msg = json_object_get(data, "message");
    } else if (json_is_object(data) &&
               (is_pubsub_message_type(data) ||
                json_object_get(root, "context") ||
                json_object_get(root, "eventId"))) {
      msg = data; /* Cloud Functions legacy form */
    }
  }
  if (!json_is_object(msg)) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "push body has no message object");
  }
  out->subscription = str_member(wrapper, "subscription", NULL);
  out->message_id = str_member(msg, "messageId", "message_id");
  out->publish_time = str_member(msg, "publishTime", "publish_time");
  out->ordering_key = str_member(msg, "orderingKey", "ordering_key");

  const json_t *data = json_object_get(msg, "data");
  if (data && !json_is_null(data)) {
    if (!json_is_string(data)) {
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "message.data is not a string");
    }
    size_t len = json_string_length(data);
    if (len > 0) {
      out->data = trb_malloc((len / 4 + 1) * 3);
      if (!out->data) {
        return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                              "out of memory decoding message.data");
      }
      int64_t n = trb_ingest_base64_decode(json_string_value(data), len,
                                           out->data);
      if (n < 0) {
        return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                              "message.data is not valid base64");
      }
      out->data_len = (size_t)n;
    }
  }

  const json_t *attrs = json_object_get(msg, "attributes");
  if (attrs && !json_is_null(attrs)) {
    if (!json_is_object(attrs)) {
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "message.attributes is not an object");
    }
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)attrs, key, val) {
      if (!json_is_string(val)) {
        return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                              "message.attributes.%s is not a string", key);
      }
      if (out->n_attrs == TRB_INGEST_PUSH_MAX_ATTRS) {
        return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                              "message has more than %d attributes",
                              TRB_INGEST_PUSH_MAX_ATTRS);
      }
      if (key[0] == '\0' || strlen(key) > ATTR_KEY_MAX) {
        return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                              "message attribute key is empty or longer "
                              "than %d bytes", ATTR_KEY_MAX);
      }
      if (json_string_length(val) > ATTR_VALUE_MAX) {
        return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                              "message.attributes.%s is longer than %d bytes",
                              key, ATTR_VALUE_MAX);
      }
      out->attrs[out->n_attrs].key = key;
      out->attrs[out->n_attrs].value = json_string_value(val);
      out->n_attrs++;
    }
  }
  if (out->data_len == 0 && out->n_attrs == 0) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "message has neither data nor attributes");
  }
  return GRPC_STATUS_OK;
}

void trb_ingest_push_msg_deinit(trb_ingest_push_msg_t *m) {
  if (!m) return;
  trb_free(m->data);
  m->data = NULL;
  m->data_len = 0;
}
