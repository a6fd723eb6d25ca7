/*
 * faults.c — fault injection registry: a short list of per-method rules
 * under one mutex (tests install a handful; the lookup is a linear scan).
 */
#include "src/emulator/faults.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "src/common/alloc.h"

#define MAX_DROPPERS 8

typedef struct rule_s {
  char *method;
  int count; /* < 0 = unlimited; 0 = error part inactive */
  grpc_status_code code;
  char *message;
  int latency_ms;
  int drop_after_write; /* successful appends to answer by a dropped stream */
  struct rule_s *next;
} rule_t;

struct trb_faults_s {
  pthread_mutex_t mu;
  /* Held while droppers run, so off_drop can wait for them. */
  pthread_mutex_t drop_mu;
  rule_t *rules;
  struct {
    trb_faults_drop_cb cb;
    void *user;
  } droppers[MAX_DROPPERS];
  int n_droppers;
  int64_t injected;
  /* Held while the schema hook runs, so off_schema_update can wait. */
  pthread_mutex_t schema_mu;
  trb_faults_schema_cb schema_cb;
  void *schema_user;
};

trb_faults_t *trb_faults_create(void) {
  trb_faults_t *f = trb_calloc(1, sizeof(*f));
  if (f) {
    pthread_mutex_init(&f->mu, NULL);
    pthread_mutex_init(&f->drop_mu, NULL);
    pthread_mutex_init(&f->schema_mu, NULL);
  }
  return f;
}

static void rule_free(rule_t *r) {
  trb_free(r->method);
  trb_free(r->message);
  trb_free(r);
}

void trb_faults_clear(trb_faults_t *f) {
  pthread_mutex_lock(&f->mu);
  rule_t *r = f->rules;
  f->rules = NULL;
  pthread_mutex_unlock(&f->mu);
  while (r) {
    rule_t *next = r->next;
    rule_free(r);
    r = next;
  }
}

void trb_faults_destroy(trb_faults_t *f) {
  if (!f) return;
  trb_faults_clear(f);
  pthread_mutex_destroy(&f->mu);
  pthread_mutex_destroy(&f->drop_mu);
  pthread_mutex_destroy(&f->schema_mu);
  trb_free(f);
}

/* Find or create the rule for `method`; called with the lock held. */
static rule_t *rule_for(trb_faults_t *f, const char *method) {
  for (rule_t *r = f->rules; r; r = r->next) {
    if (strcmp(r->method, method) == 0) return r;
  }
  rule_t *r = trb_calloc(1, sizeof(*r));
  if (!r) return NULL;
  r->method = trb_strdup(method);
  if (!r->method) {
    trb_free(r);
    return NULL;
  }
  r->next = f->rules;
  f->rules = r;
  return r;
}

grpc_status_code trb_faults_add_error(trb_faults_t *f, const char *method,
                                      int count, grpc_status_code code,
                                      const char *message, trb_status_t *st) {
  if (!method || !*method)
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "fault rule needs a method name or \"*\"");
  if (code == GRPC_STATUS_OK)
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "fault rule needs a non-OK status code");
  char *msg = trb_strdup(message ? message : "injected fault");
  if (!msg) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "fault");
  pthread_mutex_lock(&f->mu);
  rule_t *r = rule_for(f, method);
  if (!r) {
    pthread_mutex_unlock(&f->mu);
    trb_free(msg);
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "fault rule");
  }
  trb_free(r->message);
  r->message = msg;
  r->code = code;
  r->count = count;
  pthread_mutex_unlock(&f->mu);
  return GRPC_STATUS_OK;
}

grpc_status_code trb_faults_set_latency(trb_faults_t *f, const char *method,
                                        int latency_ms, trb_status_t *st) {
  if (!method || !*method || latency_ms < 0)
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "latency rule needs a method and latency_ms >= 0");
  pthread_mutex_lock(&f->mu);
  rule_t *r = rule_for(f, method);
  if (r) r->latency_ms = latency_ms;
  pthread_mutex_unlock(&f->mu);
  if (!r) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "fault rule");
  return GRPC_STATUS_OK;
}

bool trb_faults_take(trb_faults_t *f, const char *method,
                     grpc_status_code *code, char *message,
                     size_t message_len, int *latency_ms) {
  bool fail = false;
  int latency = 0;
  if (!f) {
    if (latency_ms) *latency_ms = 0;
    return false;
  }
  pthread_mutex_lock(&f->mu);
  /* The exact method's rule wins over "*". */
  rule_t *exact = NULL, *any = NULL;
  for (rule_t *r = f->rules; r; r = r->next) {
    if (strcmp(r->method, method) == 0) exact = r;
    else if (strcmp(r->method, "*") == 0) any = r;
  }
  if (exact && exact->latency_ms) latency = exact->latency_ms;
  else if (any) latency = any->latency_ms;
  rule_t *err = exact && exact->count != 0 ? exact : (any && any->count != 0 ? any : NULL);
  if (err) {
    fail = true;
    if (err->count > 0) err->count--;
    *code = err->code;
    if (message && message_len) snprintf(message, message_len, "%s", err->message);
    f->injected++;
  }
  pthread_mutex_unlock(&f->mu);
  if (latency_ms) *latency_ms = latency;
  return fail;
}

grpc_status_code trb_faults_on_drop(trb_faults_t *f, trb_faults_drop_cb cb,
                                    void *user, trb_status_t *st) {
  pthread_mutex_lock(&f->mu);
  if (f->n_droppers == MAX_DROPPERS) {
    pthread_mutex_unlock(&f->mu);
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                          "at most %d stream droppers", MAX_DROPPERS);
  }
  f->droppers[f->n_droppers].cb = cb;
  f->droppers[f->n_droppers].user = user;
  f->n_droppers++;
  pthread_mutex_unlock(&f->mu);
  return GRPC_STATUS_OK;
}

void trb_faults_off_drop(trb_faults_t *f, trb_faults_drop_cb cb, void *user) {
  pthread_mutex_lock(&f->drop_mu);
  pthread_mutex_lock(&f->mu);
  for (int i = 0; i < f->n_droppers; i++) {
    if (f->droppers[i].cb == cb && f->droppers[i].user == user) {
      memmove(&f->droppers[i], &f->droppers[i + 1],
              (size_t)(f->n_droppers - i - 1) * sizeof(f->droppers[0]));
      f->n_droppers--;
      break;
    }
  }
  pthread_mutex_unlock(&f->mu);
  pthread_mutex_unlock(&f->drop_mu);
}

void trb_faults_drop_streams(trb_faults_t *f, grpc_status_code code,
                             const char *message) {
  /* drop_mu keeps the list stable while callbacks run without `mu` (a
   * dropper may consult the registry). */
  pthread_mutex_lock(&f->drop_mu);
  pthread_mutex_lock(&f->mu);
  int n = f->n_droppers;
  pthread_mutex_unlock(&f->mu);
  for (int i = 0; i < n; i++) {
    f->droppers[i].cb(f->droppers[i].user, code,
                      message ? message : "streams dropped by fault injection");
  }
  pthread_mutex_unlock(&f->drop_mu);
}

int64_t trb_faults_injected(trb_faults_t *f) {
  pthread_mutex_lock(&f->mu);
  int64_t n = f->injected;
  pthread_mutex_unlock(&f->mu);
  return n;
}

grpc_status_code trb_faults_add_drop_after_write(trb_faults_t *f,
                                                 const char *method, int count,
                                                 trb_status_t *st) {
  if (!method || !*method)
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "drop-after-write rule needs a method name or \"*\"");
  pthread_mutex_lock(&f->mu);
  rule_t *r = rule_for(f, method);
  if (r) r->drop_after_write = count > 0 ? count : 0;
  pthread_mutex_unlock(&f->mu);
  if (!r) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "fault rule");
  return GRPC_STATUS_OK;
}

bool trb_faults_take_drop_after_write(trb_faults_t *f, const char *method) {
  if (!f) return false;
  bool take = false;
  pthread_mutex_lock(&f->mu);
  rule_t *exact = NULL, *any = NULL;
  for (rule_t *r = f->rules; r; r = r->next) {
    if (strcmp(r->method, method) == 0) exact = r;
    else if (strcmp(r->method, "*") == 0) any = r;
  }
  rule_t *r = exact && exact->drop_after_write ? exact
              : (any && any->drop_after_write ? any : NULL);
  if (r) {
    r->drop_after_write--;
    f->injected++;
    take = true;
  }
  pthread_mutex_unlock(&f->mu);
  return take;
}

void trb_faults_on_schema_update(trb_faults_t *f, trb_faults_schema_cb cb,
                                 void *user) {
  pthread_mutex_lock(&f->schema_mu);
  f->schema_cb = cb;
  f->schema_user = user;
  pthread_mutex_unlock(&f->schema_mu);
}

void trb_faults_off_schema_update(trb_faults_t *f, trb_faults_schema_cb cb,
                                  void *user) {
  pthread_mutex_lock(&f->schema_mu);
  if (f->schema_cb == cb && f->schema_user == user) {
    f->schema_cb = NULL;
    f->schema_user = NULL;
  }
  pthread_mutex_unlock(&f->schema_mu);
}

grpc_status_code trb_faults_update_table_schema(trb_faults_t *f,
                                                const char *table,
                                                const char *schema_json,
                                                size_t len, trb_status_t *st) {
  pthread_mutex_lock(&f->schema_mu);
  grpc_status_code c =
      f->schema_cb ? f->schema_cb(f->schema_user, table, schema_json, len, st)
                   : trb_status_set(st, GRPC_STATUS_UNIMPLEMENTED,
                                    "no BigQuery service takes schema updates");
  pthread_mutex_unlock(&f->schema_mu);
  return c;
}
