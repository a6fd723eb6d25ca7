/* pubsub.c — lifecycle of the Pub/Sub emulator service: create (load),
 * register, shutdown, destroy; fault-injection stream drops. */
#include <string.h>

#include "src/common/alloc.h"
#include "src/common/clock.h"
#include "src/common/log.h"
#include "src/emulator/pubsub/ps_internal.h"

static void on_drop(void *user, grpc_status_code code, const char *message) {
  trb_psemu_t *ps = user;
  ps_lock(ps);
  ps_streams_close_all(ps, code, message);
  ps_unlock(ps);
}

grpc_status_code trb_psemu_create(const trb_psemu_config_t *cfg,
                                  trb_psemu_t **out, trb_status_t *st) {
  *out = NULL;
  if (cfg == NULL || cfg->db == NULL) {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "pubsub: a database is required");
  }
  trb_psemu_t *ps = trb_calloc(1, sizeof(*ps));
  if (ps == NULL) {
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "pubsub: oom");
  }
  ps->db = cfg->db;
  ps->faults = cfg->faults;
  ps->project = trb_strdup(cfg->project ? cfg->project : "demo");
  ps->ms_per_s = cfg->test_ms_per_second > 0 ? cfg->test_ms_per_second : 1000;
  ps->epoch = (uint32_t)(trb_clock_wall_us() / 1000) ^
              (uint32_t)(trb_clock_mono_ns() & 0xffffff);
  if (ps->epoch == 0) ps->epoch = 1;
  pthread_mutex_init(&ps->mu, NULL);
  pthread_mutex_init(&ps->submit_mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&ps->timer_cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_cond_init(&ps->ops_cv, NULL);
  grpc_status_code c = GRPC_STATUS_OK;
  if (ps->project == NULL) {
    c = trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "pubsub: oom");
  }
  if (c == GRPC_STATUS_OK) c = ps_store_load(ps, st);
  if (c == GRPC_STATUS_OK) c = ps_timer_start(ps, st);
  if (c == GRPC_STATUS_OK && ps->faults) {
    c = trb_faults_on_drop(ps->faults, on_drop, ps, st);
  }
  if (c != GRPC_STATUS_OK) {
    trb_psemu_destroy(ps);
    return c;
  }
  size_t unacked = 0;
  for (size_t i = 0; i < ps->n_subs; i++) unacked += ps->subs[i]->entries.n;
  TRB_LOG(TRB_LOG_INFO, PS_LOG,
          "pubsub: loaded %zu topics, %zu subscriptions, %zu unacked messages",
          ps->n_topics, ps->n_subs, unacked);
  *out = ps;
  return GRPC_STATUS_OK;
}

grpc_status_code trb_psemu_register(trb_psemu_t *ps, trb_rpc_server_t *srv,
                                    trb_status_t *st) {
  grpc_status_code c = ps_admin_register(ps, srv, st);
  if (c == GRPC_STATUS_OK) c = ps_publish_register(ps, srv, st);
  if (c == GRPC_STATUS_OK) c = ps_pull_register(ps, srv, st);
  if (c == GRPC_STATUS_OK) c = ps_stream_register(ps, srv, st);
  return c;
}

void trb_psemu_shutdown(trb_psemu_t *ps) {
  if (ps == NULL) return;
  ps_lock(ps);
  ps->shut = true;
  ps_streams_close_all(ps, GRPC_STATUS_UNAVAILABLE,
                       "the emulator is shutting down");
  for (size_t i = 0; i < ps->n_subs; i++) {
    ps_waiters_serve(ps, ps->subs[i], 0, true);
  }
  ps_unlock(ps);
  ps_timer_stop(ps);
}

void trb_psemu_destroy(trb_psemu_t *ps) {
  if (ps == NULL) return;
  /* The registry may outlive the service: no drop may reach it now. */
  if (ps->faults) trb_faults_off_drop(ps->faults, on_drop, ps);
  trb_psemu_shutdown(ps);
  pthread_mutex_lock(&ps->mu);
  while (ps->pending_ops > 0) pthread_cond_wait(&ps->ops_cv, &ps->mu);
  pthread_mutex_unlock(&ps->mu);
  /* Streams still linked here were never finished by the server: the
   * server is shut down before destroy, so none remain. */
  for (size_t i = 0; i < ps->n_subs; i++) {
    ps_sub_t *s = ps->subs[i];
    s->deleted = true;
    ps_sub_clear(ps, s, NULL, NULL);
    ps_sub_unref(ps, s);
  }
  for (size_t i = 0; i < ps->n_topics; i++) ps_topic_free(ps->topics[i]);
  trb_free(ps->subs);
  trb_free(ps->topics);
  trb_free(ps->heap);
  trb_free(ps->att);
  trb_free(ps->project);
  pthread_cond_destroy(&ps->timer_cv);
  pthread_cond_destroy(&ps->ops_cv);
  pthread_mutex_destroy(&ps->mu);
  pthread_mutex_destroy(&ps->submit_mu);
  trb_free(ps);
}
