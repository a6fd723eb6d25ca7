/* pull_codec.c — see pull_codec.h. */
#include "src/pubsub/pull_codec.h"

#include <string.h>

#include "src/common/alloc.h"

static const uint8_t kEmpty[1] = {0};

/* A read cursor over [p, end). */
typedef struct cur_s {
  const uint8_t *p, *end;
} cur_t;

static bool rd_varint_slow(cur_t *c, uint64_t *v) {
  uint64_t x = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (c->p >= c->end) return false;
    uint8_t b = *c->p++;
    x |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = x;
      return true;
    }
  }
  return false;
}

/* Almost every varint of a response (tags, lengths of ids and small
 * payloads, counters) is one byte: decoded inline, the rest out of line. */
static inline bool rd_varint(cur_t *c, uint64_t *v) {
  if (c->p < c->end && *c->p < 0x80) {
    *v = *c->p++;
    return true;
  }
  /* Two bytes: the lengths of payloads of 128..16383 bytes. */
  if (c->end - c->p >= 2 && c->p[1] < 0x80) {
    *v = (uint64_t)(c->p[0] & 0x7f) | (uint64_t)c->p[1] << 7;
    c->p += 2;
    return true;
  }
  return rd_varint_slow(c, v);
}

/* Length-delimited payload: sets *sub to it and advances `c`. */
static inline bool rd_len(cur_t *c, cur_t *sub) {
  uint64_t n;
  if (!rd_varint(c, &n) || n > (uint64_t)(c->end - c->p)) return false;
  sub->p = c->p;
  sub->end = c->p + n;
  c->p += n;
  return true;
}

/* Skip a field of wire type `wt` (tag already read). */
static bool skip(cur_t *c, uint32_t wt) {
  uint64_t v;
  cur_t sub;
  switch (wt) {
    case 0:
      return rd_varint(c, &v);
    case 1:
      if (c->end - c->p < 8) return false;
      c->p += 8;
      return true;
    case 2:
      return rd_len(c, &sub);
    case 5:
      if (c->end - c->p < 4) return false;
      c->p += 4;
      return true;
    default:
      return false;
  }
}

/* Read a tag; false at the end (*ok true) or when malformed (*ok false). */
static inline bool rd_tag(cur_t *c, uint32_t *field, uint32_t *wt,
                          bool *ok) {
  *ok = true;
  if (c->p >= c->end) return false;
  if (*c->p < 0x80) { /* fields 1..15: a one-byte tag */
    uint8_t b = *c->p++;
    *field = (uint32_t)(b >> 3);
    *wt = (uint32_t)(b & 7);
    if (*field == 0) *ok = false;
    return *ok;
  }
  uint64_t t;
  if (!rd_varint(c, &t) || (t >> 3) == 0 || (t >> 3) > 0x1fffffff) {
    *ok = false;
    return false;
  }
  *field = (uint32_t)(t >> 3);
  *wt = (uint32_t)(t & 7);
  return true;
}

/* map<string,string> entry: key=1, value=2. */
static bool map_entry(cur_t e, cur_t *k, cur_t *v) {
  /* Fast path, the layout every encoder writes for short strings: key
   * then value, one-byte lengths, nothing else. */
  const uint8_t *p = e.p;
  size_t n = (size_t)(e.end - e.p);
  if (n >= 4 && p[0] == 0x0a && p[1] < 0x80 && (size_t)p[1] + 4 <= n &&
      p[2 + p[1]] == 0x12 && p[3 + p[1]] < 0x80 &&
      (size_t)p[1] + 4 + p[3 + p[1]] == n) {
    k->p = p + 2;
    k->end = k->p + p[1];
    v->p = k->end + 2;
    v->end = e.end;
    return true;
  }
  k->p = k->end = kEmpty;
  v->p = v->end = kEmpty;
  uint32_t f, wt;
  bool ok;
  while (rd_tag(&e, &f, &wt, &ok)) {
    if ((f == 1 || f == 2) && wt == 2) {
      if (!rd_len(&e, f == 1 ? k : v)) return false;
    } else if (!skip(&e, wt)) {
      return false;
    }
  }
  return ok;
}

static bool timestamp(cur_t c, int64_t *secs, int32_t *nanos) {
  uint32_t f, wt;
  bool ok;
  uint64_t v;
  while (rd_tag(&c, &f, &wt, &ok)) {
    if ((f == 1 || f == 2) && wt == 0) {
      if (!rd_varint(&c, &v)) return false;
      if (f == 1) {
        *secs = (int64_t)v;
      } else {
        *nanos = (int32_t)v;
      }
    } else if (!skip(&c, wt)) {
      return false;
    }
  }
  return ok;
}

static bool pubsub_message(cur_t c, trb_ps_rx_msg_t *m) {
  m->msg = c.p;
  m->msg_len = (size_t)(c.end - c.p);
  /* A second `message` field replaces the first (its attributes too: the
   * iteration state below refers to this `msg` only). */
  m->n_attrs = 0;
  m->attr_bytes = 0;
  m->attr_at = m->attr1_at = m->msg_len;
  uint32_t f, wt;
  bool ok;
  cur_t sub, k, v;
  for (const uint8_t *at = c.p; rd_tag(&c, &f, &wt, &ok); at = c.p) {
    if (f >= 1 && f <= 5 && wt == 2) {
      if (!rd_len(&c, &sub)) return false;
      size_t n = (size_t)(sub.end - sub.p);
      switch (f) {
        case 1:
          m->data = sub.p;
          m->data_len = n;
          break;
        case 2:
          if (!map_entry(sub, &k, &v)) return false;
          if (m->n_attrs == 0) { /* kept for trb_ps_rx_attr_next */
            m->attr_at = (size_t)(at - m->msg);
            m->attr1_at = (size_t)(c.p - m->msg);
            m->attr0_key = (const char *)k.p;
            m->attr0_key_len = (size_t)(k.end - k.p);
            m->attr0_value = (const char *)v.p;
            m->attr0_value_len = (size_t)(v.end - v.p);
          }
          m->n_attrs++;
          m->attr_bytes += (size_t)(k.end - k.p) + (size_t)(v.end - v.p);
          break;
        case 3:
          m->message_id = (const char *)sub.p;
          m->message_id_len = n;
          break;
        case 4:
          if (!timestamp(sub, &m->publish_s, &m->publish_nanos)) return false;
          break;
        default:
          m->ordering_key = (const char *)sub.p;
          m->ordering_key_len = n;
          break;
      }
    } else if (!skip(&c, wt)) {
      return false;
    }
  }
  return ok;
}

static bool received_message(cur_t c, trb_ps_rx_msg_t *m) {
  memset(m, 0, sizeof(*m));
  m->ack_id = m->message_id = m->ordering_key = "";
  uint32_t f, wt;
  bool ok;
  cur_t sub;
  uint64_t v;
  while (rd_tag(&c, &f, &wt, &ok)) {
    if (f == 1 && wt == 2) {
      if (!rd_len(&c, &sub)) return false;
      m->ack_id = (const char *)sub.p;
      m->ack_id_len = (size_t)(sub.end - sub.p);
    } else if (f == 2 && wt == 2) {
      if (!rd_len(&c, &sub) || !pubsub_message(sub, m)) return false;
    } else if (f == 3 && wt == 0) {
      if (!rd_varint(&c, &v)) return false;
      m->delivery_attempt = (int32_t)v;
    } else if (!skip(&c, wt)) {
      return false;
    }
  }
  return ok;
}

static bool properties(cur_t c, trb_ps_pull_response_t *r) {
  uint32_t f, wt;
  bool ok;
  uint64_t v;
  r->has_properties = true;
  while (rd_tag(&c, &f, &wt, &ok)) {
    if ((f == 1 || f == 2) && wt == 0) {
      if (!rd_varint(&c, &v)) return false;
      if (f == 1) {
        r->exactly_once = v != 0;
      } else {
        r->ordering = v != 0;
      }
    } else if (!skip(&c, wt)) {
      return false;
    }
  }
  return ok;
}

grpc_status_code trb_ps_pull_response_decode(const uint8_t *buf, size_t len,
                                             trb_ps_pull_response_t *r,
                                             trb_status_t *st) {
  r->n = 0;
  r->has_properties = r->exactly_once = r->ordering = false;
  cur_t c = {buf, buf + len};
  uint32_t f, wt;
  bool ok;
  cur_t sub;
  while (rd_tag(&c, &f, &wt, &ok)) {
    if (f == 1 && wt == 2) {
      if (!rd_len(&c, &sub)) {
        ok = false;
        break;
      }
      if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        trb_ps_rx_msg_t *m = trb_realloc(r->msgs, cap * sizeof(*m));
        if (!m) {
          r->n = 0;
          return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                                "StreamingPullResponse: out of memory");
        }
        r->msgs = m;
        r->cap = cap;
      }
      if (!received_message(sub, &r->msgs[r->n])) {
        ok = false;
        break;
      }
      r->n++;
    } else if (f == 4 && wt == 2) {
      if (!rd_len(&c, &sub) || !properties(sub, r)) {
        ok = false;
        break;
      }
    } else if (!skip(&c, wt)) {
      ok = false;
      break;
    }
  }
  if (!ok || c.p != c.end) {
    r->n = 0;
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "malformed StreamingPullResponse");
  }
  return GRPC_STATUS_OK;
}

void trb_ps_pull_response_deinit(trb_ps_pull_response_t *r) {
  if (!r) return;
  trb_free(r->msgs);
  memset(r, 0, sizeof(*r));
}

bool trb_ps_rx_attr_next(const trb_ps_rx_msg_t *m, size_t *pos,
                         const char **key, size_t *key_len,
                         const char **value, size_t *value_len) {
  if (*pos <= m->attr_at && m->n_attrs > 0) { /* the first, decoded already */
    *key = m->attr0_key;
    *key_len = m->attr0_key_len;
    *value = m->attr0_value;
    *value_len = m->attr0_value_len;
    *pos = m->attr1_at;
    return true;
  }
  if (!m->msg || *pos >= m->msg_len) return false;
  cur_t c = {m->msg + *pos, m->msg + m->msg_len};
  uint32_t f, wt;
  bool ok;
  cur_t sub, k, v;
  while (rd_tag(&c, &f, &wt, &ok)) {
    if (f == 2 && wt == 2) {
      if (!rd_len(&c, &sub) || !map_entry(sub, &k, &v)) return false;
      *key = (const char *)k.p;
      *key_len = (size_t)(k.end - k.p);
      *value = (const char *)v.p;
      *value_len = (size_t)(v.end - v.p);
      *pos = (size_t)(c.p - m->msg);
      return true;
    }
    if (!skip(&c, wt)) return false;
  }
  *pos = m->msg_len;
  return false;
}
