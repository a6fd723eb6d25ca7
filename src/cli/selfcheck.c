/*
 * selfcheck.c — rpc self-check (see selfcheck.h).
 *
 * The server echoes: Publish answers one message id per message, and the
 * stream method answers every message with the same bytes. Figures: unary
 * round-trip latency percentiles, stream messages/s and bytes/s.
 */
#include "src/cli/selfcheck.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "google/pubsub/v1/pubsub.pb.h"
#include "src/common/alloc.h"
#include "src/common/clock.h"
#include "src/rpc/pb.h"
#include "src/rpc/rpc.h"
#include "src/rpc/server.h"

#define PUBLISH "/google.pubsub.v1.Publisher/Publish"
#define ECHO "/tributary.selfcheck.Echo/Stream"
#define TOPIC "projects/selfcheck/topics/events"
#define WINDOW 1000

static void on_publish(void *user, trb_rpc_server_call_t *call,
                       const uint8_t *req, size_t len) {
  google_pubsub_v1_PublishRequest in = google_pubsub_v1_PublishRequest_init_zero;
  google_pubsub_v1_PublishResponse out = google_pubsub_v1_PublishResponse_init_zero;
  char id[32];
  char *ids[1] = {id};
  uint8_t *buf = NULL;
  size_t buf_len = 0;
  trb_status_t st;

  (void)user;
  if (trb_pb_decode(google_pubsub_v1_PublishRequest_fields, req, len, &in,
                    &st) != GRPC_STATUS_OK ||
      in.messages_count != 1) {
    trb_pb_release(google_pubsub_v1_PublishRequest_fields, &in);
    trb_rpc_server_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT,
                               "expected one message", NULL, 0, NULL, 0);
    return;
  }
  snprintf(id, sizeof(id), "%zu", in.messages[0].data.len);
  out.message_ids_count = 1;
  out.message_ids = ids;
  trb_pb_release(google_pubsub_v1_PublishRequest_fields, &in);
  if (trb_pb_encode(google_pubsub_v1_PublishResponse_fields, &out, &buf,
                    &buf_len, &st) != GRPC_STATUS_OK) {
    trb_rpc_server_call_finish(call, st.code, st.msg, NULL, 0, NULL, 0);
    return;
  }
  trb_rpc_server_call_finish(call, GRPC_STATUS_OK, NULL, NULL, 0, buf, buf_len);
  trb_free(buf);
}

static void echo_start(void *user, trb_rpc_server_call_t *call) {
  (void)user;
  (void)call;
}

static void echo_message(void *user, trb_rpc_server_call_t *call,
                         const uint8_t *data, size_t len) {
  (void)user;
  trb_rpc_server_call_write(call, data, len);
}

static void echo_half_close(void *user, trb_rpc_server_call_t *call) {
  (void)user;
  trb_rpc_server_call_finish(call, GRPC_STATUS_OK, NULL, NULL, 0, NULL, 0);
}

/* Client side of the echo stream. */
typedef struct echo_client_s {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  long sent_done; /* writes handed to gRPC */
  long received;
  bool closed;
  grpc_status_code code;
} echo_client_t;

static void client_message(void *user, trb_rpc_stream_t *s, const uint8_t *d,
                           size_t n) {
  echo_client_t *c = user;
  (void)s;
  (void)d;
  (void)n;
  pthread_mutex_lock(&c->mu);
  c->received++;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

static void client_write_done(void *user, trb_rpc_stream_t *s, void *tag,
                              bool ok) {
  echo_client_t *c = user;
  (void)s;
  (void)tag;
  (void)ok;
  pthread_mutex_lock(&c->mu);
  c->sent_done++;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

static void client_close(void *user, trb_rpc_stream_t *s,
                         const trb_rpc_result_t *r) {
  echo_client_t *c = user;
  (void)s;
  pthread_mutex_lock(&c->mu);
  c->closed = true;
  c->code = r->code;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static int run_unary(trb_rpc_loop_t *loop, trb_rpc_channel_t *ch, long calls) {
  google_pubsub_v1_PubsubMessage msg = google_pubsub_v1_PubsubMessage_init_zero;
  google_pubsub_v1_PublishRequest req = google_pubsub_v1_PublishRequest_init_zero;
  static const char payload[] = "{\"event_type\":\"order\",\"order_id\":\"o-1\"}";
  trb_rpc_md_t md = {"x-goog-request-params", "topic=" TOPIC, 0};
  trb_rpc_call_opts_t opts = {5000, &md, 1};
  int64_t *lat = trb_calloc((size_t)calls, sizeof(int64_t));
  uint8_t *buf = NULL;
  size_t len = 0;
  long failed = 0;
  trb_status_t st;
  int64_t t0;

  if (lat == NULL) return 1;
  msg.data.data = (const uint8_t *)payload;
  msg.data.len = sizeof(payload) - 1;
  req.topic = (char *)TOPIC;
  req.messages_count = 1;
  req.messages = &msg;
  if (trb_pb_encode(google_pubsub_v1_PublishRequest_fields, &req, &buf, &len,
                    &st) != GRPC_STATUS_OK) {
    trb_free(lat);
    return 1;
  }
  t0 = trb_clock_mono_ns();
  for (long i = 0; i < calls; i++) {
    trb_rpc_response_t resp;
    int64_t start = trb_clock_mono_ns();
    if (trb_rpc_unary_call(loop, ch, PUBLISH, buf, len, &opts, &resp) !=
        GRPC_STATUS_OK) {
      if (failed++ == 0) {
        fprintf(stderr, "selfcheck: Publish failed: %s %s\n",
                trb_status_code_name(resp.code), resp.message);
      }
    }
    lat[i] = trb_clock_mono_ns() - start;
    trb_rpc_response_deinit(&resp);
  }
  {
    double secs = (double)(trb_clock_mono_ns() - t0) / 1e9;
    qsort(lat, (size_t)calls, sizeof(int64_t), cmp_i64);
    printf("unary  Publish: %ld calls, %ld failed, %.0f calls/s, round trip "
           "p50 %.1f us  p99 %.1f us  max %.1f us\n",
           calls, failed, (double)calls / secs, (double)lat[calls / 2] / 1e3,
           (double)lat[(calls * 99) / 100] / 1e3,
           (double)lat[calls - 1] / 1e3);
  }
  trb_free(buf);
  trb_free(lat);
  return failed == 0 ? 0 : 1;
}

static int run_stream(trb_rpc_loop_t *loop, trb_rpc_channel_t *ch,
                      long messages) {
  trb_rpc_stream_cbs_t cbs = {client_message, client_write_done, client_close};
  echo_client_t c;
  trb_rpc_stream_t *s = NULL;
  trb_status_t st;
  char payload[600];
  int64_t t0, cpu0;
  int rc;

  memset(&c, 0, sizeof(c));
  memset(payload, 'e', sizeof(payload));
  pthread_mutex_init(&c.mu, NULL);
  pthread_cond_init(&c.cv, NULL);
  if (trb_rpc_stream_start(loop, ch, ECHO, NULL, &cbs, &c, &s, &st) !=
      GRPC_STATUS_OK) {
    fprintf(stderr, "selfcheck: stream: %s\n", st.msg);
    return 1;
  }
  t0 = trb_clock_mono_ns();
  cpu0 = trb_clock_cpu_ns();
  for (long i = 0; i < messages; i++) {
    pthread_mutex_lock(&c.mu);
    while (i - c.received >= WINDOW && !c.closed) {
      pthread_cond_wait(&c.cv, &c.mu);
    }
    pthread_mutex_unlock(&c.mu);
    if (trb_rpc_stream_write(s, payload, sizeof(payload), NULL) !=
        GRPC_STATUS_OK) {
      break;
    }
  }
  pthread_mutex_lock(&c.mu);
  while (c.received < messages && !c.closed) pthread_cond_wait(&c.cv, &c.mu);
  pthread_mutex_unlock(&c.mu);
  {
    double secs = (double)(trb_clock_mono_ns() - t0) / 1e9;
    double cpu = (double)(trb_clock_cpu_ns() - cpu0) / 1e9;
    printf("stream echo: %ld x %zu B each way, %.0f msg/s, %.1f MB/s each "
           "way, %.2f CPU-s per million messages (client+server)\n",
           c.received, sizeof(payload), (double)c.received / secs,
           (double)c.received * sizeof(payload) / secs / 1e6,
           cpu / ((double)c.received / 1e6));
  }
  trb_rpc_stream_writes_done(s);
  pthread_mutex_lock(&c.mu);
  while (!c.closed) pthread_cond_wait(&c.cv, &c.mu);
  pthread_mutex_unlock(&c.mu);
  rc = (c.code == GRPC_STATUS_OK && c.received == messages) ? 0 : 1;
  if (rc) {
    fprintf(stderr, "selfcheck: stream ended %s after %ld of %ld\n",
            trb_status_code_name(c.code), c.received, messages);
  }
  trb_rpc_stream_release(s);
  pthread_cond_destroy(&c.cv);
  pthread_mutex_destroy(&c.mu);
  return rc;
}

int trb_cli_selfcheck(int argc, char **argv) {
  long calls = 2000, messages = 100000;
  trb_rpc_server_config_t scfg = {0};
  trb_rpc_stream_handler_t echo = {echo_start, echo_message, echo_half_close,
                                   NULL};
  trb_rpc_channel_config_t ccfg = {0};
  trb_rpc_server_t *srv = NULL;
  trb_rpc_loop_t *loop = NULL;
  trb_rpc_channel_t *ch = NULL;
  trb_status_t st;
  char target[64];
  int port = 0, rc = 1;

  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--calls") == 0 && i + 1 < argc) {
      calls = strtol(argv[++i], NULL, 10);
    } else if (strcmp(argv[i], "--messages") == 0 && i + 1 < argc) {
      messages = strtol(argv[++i], NULL, 10);
    } else {
      fprintf(stderr, "selfcheck: unknown argument \"%s\"\n"
                      "usage: tributary selfcheck [--calls N] [--messages N]\n",
              argv[i]);
      return 2;
    }
  }
  if (calls < 1 || messages < 1) {
    fprintf(stderr, "selfcheck: --calls and --messages must be >= 1\n");
    return 2;
  }
  trb_rpc_init();
  scfg.host = "127.0.0.1";
  if (trb_rpc_server_create(&scfg, &srv, &st) != GRPC_STATUS_OK ||
      trb_rpc_server_add_unary(srv, PUBLISH, on_publish, NULL, &st) !=
          GRPC_STATUS_OK ||
      trb_rpc_server_add_stream(srv, ECHO, &echo, NULL, &st) !=
          GRPC_STATUS_OK ||
      trb_rpc_server_start(srv, &port, &st) != GRPC_STATUS_OK ||
      trb_rpc_loop_create("selfcheck", &loop, &st) != GRPC_STATUS_OK) {
    fprintf(stderr, "selfcheck: %s\n", st.msg);
    goto out;
  }
  snprintf(target, sizeof(target), "127.0.0.1:%d", port);
  ccfg.target = target;
  ccfg.creds = TRB_RPC_CREDS_INSECURE;
  if (trb_rpc_channel_create(&ccfg, &ch, &st) != GRPC_STATUS_OK) {
    fprintf(stderr, "selfcheck: %s\n", st.msg);
    goto out;
  }
  printf("tributary selfcheck: gRPC server on %s, client over src/rpc\n",
         target);
  rc = run_unary(loop, ch, calls);
  rc |= run_stream(loop, ch, messages);
  printf("selfcheck: %s\n", rc == 0 ? "OK" : "FAILED");
out:
  trb_rpc_loop_destroy(loop);
  trb_rpc_channel_destroy(ch);
  trb_rpc_server_destroy(srv);
  trb_rpc_shutdown();
  return rc;
}
