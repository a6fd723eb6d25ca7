/*
 * deadletters.c — see deadletters.h.
 */
#include "src/up/deadletters.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "src/common/alloc.h"
#include "src/pubsub/subscriber.h"

struct trb_up_deadletters_s {
  trb_ps_subscriber_t *sub;
  int64_t since_us;
  pthread_mutex_t mu;
  trb_up_reason_t reasons[TRB_UP_MAX_REASONS];
  int n_reasons;
  uint64_t other; /* reasons beyond the table */
  /* Message ids counted (open addressing) and handles held. */
  char **ids;
  size_t ids_cap, ids_n;
  trb_ps_ack_handle_t **held;
  size_t held_n, held_cap;
  uint64_t count;
  bool stopping; /* nack at once what arrives */
};

void trb_up_reason_normalize(const char *in, size_t len, char *out,
                             size_t cap) {
  size_t k = 0;
  for (size_t i = 0; i < len && k + 4 < cap; i++) {
    char c = in[i];
    if (c == '"') {
      /* Skip to the closing quote. */
      size_t j = i + 1;
      while (j < len && in[j] != '"') j += in[j] == '\\' ? 2 : 1;
      memcpy(out + k, "\"\xE2\x80\xA6\"", 5);
      k += 5;
      i = j;
      continue;
    }
    if (c == '[' && i + 1 < len && in[i + 1] >= '0' && in[i + 1] <= '9') {
      size_t j = i + 1;
      while (j < len && in[j] >= '0' && in[j] <= '9') j++;
      if (j < len && in[j] == ']') {
        memcpy(out + k, "[*]", 3);
        k += 3;
        i = j;
        continue;
      }
    }
    if (c >= '0' && c <= '9' && k >= 5 && memcmp(out + k - 5, "byte ", 5) == 0) {
      while (i + 1 < len && in[i + 1] >= '0' && in[i + 1] <= '9') i++;
      out[k++] = 'N';
      continue;
    }
    out[k++] = c;
  }
  if (cap) out[k < cap ? k : cap - 1] = '\0';
}

static uint64_t hash(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ULL;
  return h;
}

/* Under mu: insert `id`; false when already present or out of memory. */
static bool add_id(trb_up_deadletters_t *d, const char *id) {
  if ((d->ids_n + 1) * 2 > d->ids_cap) {
    size_t cap = d->ids_cap ? d->ids_cap * 2 : 4096;
    char **n = trb_calloc(cap, sizeof(char *));
    if (!n) return false;
    for (size_t i = 0; i < d->ids_cap; i++) {
      if (!d->ids[i]) continue;
      size_t h = hash(d->ids[i]) & (cap - 1);
      while (n[h]) h = (h + 1) & (cap - 1);
      n[h] = d->ids[i];
    }
    trb_free(d->ids);
    d->ids = n;
    d->ids_cap = cap;
  }
  size_t h = hash(id) & (d->ids_cap - 1);
  while (d->ids[h]) {
    if (strcmp(d->ids[h], id) == 0) return false;
    h = (h + 1) & (d->ids_cap - 1);
  }
  d->ids[h] = trb_strdup(id);
  if (!d->ids[h]) return false;
  d->ids_n++;
  return true;
}

static void on_message(void *user, const trb_ps_received_t *m,
                       trb_ps_ack_handle_t *h) {
  trb_up_deadletters_t *d = user;
  pthread_mutex_lock(&d->mu);
  if (d->stopping) {
    pthread_mutex_unlock(&d->mu);
    trb_ps_nack(h);
    return;
  }
  if (d->held_n == d->held_cap) {
    size_t cap = d->held_cap ? d->held_cap * 2 : 1024;
    trb_ps_ack_handle_t **n = trb_realloc(d->held, cap * sizeof(*n));
    if (!n) {
      pthread_mutex_unlock(&d->mu);
      trb_ps_nack(h);
      return;
    }
    d->held = n;
    d->held_cap = cap;
  }
  d->held[d->held_n++] = h;
  int64_t pt = m->publish_time_s * 1000000 + m->publish_time_nanos / 1000;
  if (pt >= d->since_us && add_id(d, m->message_id)) {
    d->count++;
    const char *stage = "", *reason = "";
    for (size_t i = 0; i < m->n_attrs; i++) {
      if (strcmp(m->attrs[i].key, "tributary_error_stage") == 0)
        stage = m->attrs[i].value;
      if (strcmp(m->attrs[i].key, "tributary_error_reason") == 0)
        reason = m->attrs[i].value;
    }
    char norm[104];
    trb_up_reason_normalize(reason, strlen(reason), norm, sizeof norm);
    int i = 0;
    for (; i < d->n_reasons; i++)
      if (strcmp(d->reasons[i].stage, stage) == 0 &&
          strcmp(d->reasons[i].reason, norm) == 0)
        break;
    if (i == d->n_reasons && d->n_reasons < TRB_UP_MAX_REASONS) {
      snprintf(d->reasons[i].stage, sizeof d->reasons[i].stage, "%s", stage);
      snprintf(d->reasons[i].reason, sizeof d->reasons[i].reason, "%s", norm);
      d->n_reasons++;
    }
    if (i < d->n_reasons) {
      d->reasons[i].n++;
    } else {
      d->other++;
    }
  }
  pthread_mutex_unlock(&d->mu);
}

grpc_status_code trb_up_deadletters_start(trb_rpc_loop_t *loop,
                                          trb_rpc_channel_t *ch,
                                          const char *subscription,
                                          int64_t since_us,
                                          trb_up_deadletters_t **out,
                                          trb_status_t *st) {
  trb_up_deadletters_t *d = trb_calloc(1, sizeof(*d));
  if (!d) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
  d->since_us = since_us;
  pthread_mutex_init(&d->mu, NULL);
  trb_ps_subscriber_config_t cfg = {0};
  cfg.max_outstanding_messages = 1000000;
  cfg.max_outstanding_bytes = 1LL << 30;
  grpc_status_code c = trb_ps_subscriber_create(loop, ch, subscription, &cfg,
                                                on_message, d, &d->sub, st);
  if (c == GRPC_STATUS_OK) c = trb_ps_subscriber_start(d->sub, st);
  if (c != GRPC_STATUS_OK) {
    trb_up_deadletters_destroy(d, 0);
    return c;
  }
  *out = d;
  return GRPC_STATUS_OK;
}

uint64_t trb_up_deadletters_count(trb_up_deadletters_t *d) {
  pthread_mutex_lock(&d->mu);
  uint64_t n = d->count;
  pthread_mutex_unlock(&d->mu);
  return n;
}

int trb_up_deadletters_reasons(trb_up_deadletters_t *d, trb_up_reason_t *out,
                               int cap) {
  pthread_mutex_lock(&d->mu);
  int n = d->n_reasons < cap ? d->n_reasons : cap;
  trb_up_reason_t tmp[TRB_UP_MAX_REASONS];
  memcpy(tmp, d->reasons, (size_t)d->n_reasons * sizeof(tmp[0]));
  int total = d->n_reasons;
  pthread_mutex_unlock(&d->mu);
  /* Largest first (insertion sort; at most 64). */
  for (int i = 1; i < total; i++) {
    trb_up_reason_t x = tmp[i];
    int j = i - 1;
    while (j >= 0 && tmp[j].n < x.n) {
      tmp[j + 1] = tmp[j];
      j--;
    }
    tmp[j + 1] = x;
  }
  memcpy(out, tmp, (size_t)n * sizeof(tmp[0]));
  return n;
}

void trb_up_deadletters_destroy(trb_up_deadletters_t *d, int64_t timeout_ms) {
  if (!d) return;
  if (d->sub) {
    pthread_mutex_lock(&d->mu);
    d->stopping = true;
    trb_ps_ack_handle_t **held = d->held;
    size_t n = d->held_n;
    d->held = NULL;
    d->held_n = d->held_cap = 0;
    pthread_mutex_unlock(&d->mu);
    for (size_t i = 0; i < n; i++) trb_ps_nack(held[i]);
    trb_free(held);
    trb_status_t st = {0};
    trb_ps_subscriber_stop(d->sub, timeout_ms, &st);
    trb_ps_subscriber_destroy(d->sub);
  }
  for (size_t i = 0; i < d->ids_cap; i++) trb_free(d->ids[i]);
  trb_free(d->ids);
  trb_free(d->held);
  pthread_mutex_destroy(&d->mu);
  trb_free(d);
}
