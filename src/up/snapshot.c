/*
 * snapshot.c — see snapshot.h.
 */
#include "src/up/snapshot.h"

#include <stdio.h>
#include <string.h>

#include "src/common/arena.h"
#include "src/gen/http_client.h"

#define SP "tributary_stream_"

static trb_up_count_t *find(trb_up_count_t *arr, int *n, int max,
                            const char *table, const char *stage) {
  for (int i = 0; i < *n; i++)
    if (strcmp(arr[i].table, table) == 0 && strcmp(arr[i].stage, stage) == 0)
      return &arr[i];
  if (*n == max) return NULL;
  trb_up_count_t *c = &arr[(*n)++];
  memset(c, 0, sizeof(*c));
  snprintf(c->table, sizeof c->table, "%s", table);
  snprintf(c->stage, sizeof c->stage, "%s", stage);
  return c;
}

void trb_up_snapshot_add_ingest(trb_up_snapshot_t *s, const char *text,
                                size_t len) {
  s->ingest_ok = true;
  s->published +=
      trb_prom_sum(text, len, "tributary_ingest_events_published_total", NULL,
                   NULL);
  s->refused +=
      trb_prom_sum(text, len, "tributary_ingest_rejected_total", NULL, NULL);
}

static void rows_cb(void *user, const char *labels, size_t ll, double v) {
  trb_up_snapshot_t *s = user;
  char table[128] = "";
  trb_prom_label(labels, ll, "table", table, sizeof table);
  trb_up_count_t *c =
      find(s->tables, &s->n_tables, TRB_UP_MAX_TABLES, table, "");
  if (c) c->n += v;
  s->rows += v;
}

static void dl_cb(void *user, const char *labels, size_t ll, double v) {
  trb_up_snapshot_t *s = user;
  char table[128] = "", stage[16] = "";
  trb_prom_label(labels, ll, "table", table, sizeof table);
  trb_prom_label(labels, ll, "stage", stage, sizeof stage);
  trb_up_count_t *c = find(s->dl, &s->n_dl, TRB_UP_MAX_DL, table, stage);
  if (c) c->n += v;
  s->dead += v;
}

void trb_up_snapshot_add_stream(trb_up_snapshot_t *s, const char *text,
                                size_t len) {
  s->streams_ok++;
  s->received += trb_prom_sum(text, len, SP "messages_received_total", NULL,
                               NULL);
  s->in_flight +=
      trb_prom_sum(text, len, SP "messages_in_flight", NULL, NULL);
  trb_prom_each(text, len, SP "rows_appended_total", rows_cb, s);
  trb_prom_each(text, len, SP "dead_letters_total", dl_cb, s);
  trb_prom_hist_add(&s->e2e, text, len, SP "end_to_end_latency_seconds");
}

void trb_up_snapshot_scrape(trb_up_snapshot_t *s, int ingest_port,
                            const int *ports, int n_ports, int timeout_ms) {
  memset(s, 0, sizeof(*s));
  trb_buf_t b = TRB_BUF_INIT;
  int status = 0;
  if (ingest_port > 0 &&
      trb_http_get("127.0.0.1", ingest_port, "/metrics", timeout_ms, &status,
                   &b) == 0 &&
      status == 200)
    trb_up_snapshot_add_ingest(s, b.data ? b.data : "", b.len);
  for (int i = 0; i < n_ports; i++) {
    if (trb_http_get("127.0.0.1", ports[i], "/metrics", timeout_ms, &status,
                     &b) == 0 &&
        status == 200)
      trb_up_snapshot_add_stream(s, b.data ? b.data : "", b.len);
  }
  trb_buf_deinit(&b);
}

void trb_up_snapshot_diff(const trb_up_snapshot_t *now,
                          const trb_up_snapshot_t *base,
                          trb_up_snapshot_t *out) {
  *out = *now;
  out->published -= base->published;
  out->refused -= base->refused;
  out->received -= base->received;
  out->rows = 0;
  out->dead = 0;
  for (int i = 0; i < out->n_tables; i++) {
    for (int j = 0; j < base->n_tables; j++)
      if (strcmp(base->tables[j].table, out->tables[i].table) == 0)
        out->tables[i].n -= base->tables[j].n;
    out->rows += out->tables[i].n;
  }
  for (int i = 0; i < out->n_dl; i++) {
    for (int j = 0; j < base->n_dl; j++)
      if (strcmp(base->dl[j].table, out->dl[i].table) == 0 &&
          strcmp(base->dl[j].stage, out->dl[i].stage) == 0)
        out->dl[i].n -= base->dl[j].n;
    out->dead += out->dl[i].n;
  }
  for (int i = 0; i < out->e2e.n; i++)
    for (int j = 0; j < base->e2e.n; j++)
      if (base->e2e.le[j] == out->e2e.le[i])
        out->e2e.count[i] -= base->e2e.count[j];
}
