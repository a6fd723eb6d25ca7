/*
 * rpc_bench.c — throughput and CPU cost of client→server bidi streaming
 * through src/rpc on loopback, next to a raw TCP socket as the baseline.
 *
 * What it measures (one process, server on 127.0.0.1 port 0):
 *  (a) 64 KiB messages: MB/s (10^6 bytes/s) through a src/rpc stream, and
 *      the same bytes in the same 64 KiB units over a plain connected TCP
 *      socket on 127.0.0.1 (writer thread + reader thread); ratio rpc/raw
 *      (target >= 0.5).
 *  (b) 600-byte messages through a src/rpc stream: messages/s and process
 *      CPU seconds (all threads, CLOCK_PROCESS_CPUTIME_ID) per million.
 * The clock runs from the first write until the client's on_close: the
 * client half-closes, the server handler counts every message and finishes
 * with OK only at half-close, so the time covers delivery to the handler.
 * The client keeps at most a window of messages queued (on_write_done +
 * condvar), so memory stays bounded. Each measurement runs --runs times,
 * rpc and raw alternating; each run and the medians are printed, with the
 * process's minor page faults per 64 KiB rpc message (glibc trimming; see
 * perf/README.md, which also holds the baseline and findings).
 *
 * Run:   bazel run -c opt //perf:rpc_bench -- --runs 9
 * Flags: --runs N (5)  --total-mib N (1024, for a)  --messages N (1000000,
 *        for b). Exit status 0 when every run completed and the server
 *        counted exactly what was sent; 1 otherwise.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "src/common/alloc.h"
#include "src/common/clock.h"
#include "src/common/status.h"
#include "src/rpc/rpc.h"
#include "src/rpc/server.h"

#define METHOD "/trb.bench.Sink/Stream"
#define BIG_MSG_BYTES ((size_t)64 * 1024)
#define SMALL_MSG_BYTES ((size_t)600)
/* Client write windows (messages queued in src/rpc at most). 512 KiB did
 * better than 2-4 MiB here: the copies stay in cache. */
#define BIG_WINDOW_MSGS 8
#define SMALL_WINDOW_MSGS 1024
#define MAX_RUNS 100

/* ---- server: a sink that counts ---------------------------------------- */

/* The sink serves one stream at a time (the benchmark never overlaps them)
 * on its single server thread. A call's user pointer is non-NULL until the
 * handler finishes it (the call's own "finished" flag, no allocation). */
typedef struct sink_s {
  int64_t run_bytes; /* server thread only */
  int64_t run_messages;
  pthread_mutex_t mu; /* guards the totals, published at half-close */
  int64_t bytes;
  int64_t messages;
} sink_t;

static void sink_on_start(void *user, trb_rpc_server_call_t *call) {
  sink_t *sink = user;
  sink->run_bytes = sink->run_messages = 0;
  trb_rpc_server_call_set_user(call, sink);
}

static void sink_on_message(void *user, trb_rpc_server_call_t *call,
                            const uint8_t *data, size_t len) {
  sink_t *sink = user;
  (void)call, (void)data;
  sink->run_bytes += (int64_t)len;
  sink->run_messages++;
}

static void sink_on_half_close(void *user, trb_rpc_server_call_t *call) {
  sink_t *sink = user;
  pthread_mutex_lock(&sink->mu);
  sink->bytes = sink->run_bytes;
  sink->messages = sink->run_messages;
  pthread_mutex_unlock(&sink->mu);
  trb_rpc_server_call_set_user(call, NULL);
  trb_rpc_server_call_finish(call, GRPC_STATUS_OK, NULL, NULL, 0, NULL, 0);
}

static void sink_on_done(void *user, trb_rpc_server_call_t *call,
                         bool cancelled) {
  (void)user, (void)cancelled;
  if (trb_rpc_server_call_user(call) != NULL) {
    trb_rpc_server_call_finish(call, GRPC_STATUS_CANCELLED, "bench sink",
                               NULL, 0, NULL, 0);
  }
}

/* ---- client: one stream with a bounded write window -------------------- */

typedef struct client_s {
  pthread_mutex_t mu; /* guards the fields below */
  pthread_cond_t cv;
  int64_t written;    /* on_write_done count */
  int64_t failed;     /* on_write_done with ok == false */
  int64_t wake_at;    /* sender sleeps until written >= wake_at */
  bool waiting;
  bool closed;
  grpc_status_code code;
  char message[128];
} client_t;

/* The server sends no messages. */
static void client_on_message(void *user, trb_rpc_stream_t *s,
                              const uint8_t *data, size_t len) {
  (void)user, (void)s, (void)data, (void)len;
}

static void client_on_write_done(void *user, trb_rpc_stream_t *s, void *tag,
                                 bool ok) {
  client_t *c = user;
  (void)s, (void)tag;
  pthread_mutex_lock(&c->mu);
  c->written++;
  if (!ok) c->failed++;
  if (c->waiting && (c->written >= c->wake_at || !ok)) {
    c->waiting = false;
    pthread_cond_signal(&c->cv);
  }
  pthread_mutex_unlock(&c->mu);
}

static void client_on_close(void *user, trb_rpc_stream_t *s,
                            const trb_rpc_result_t *r) {
  client_t *c = user;
  (void)s;
  pthread_mutex_lock(&c->mu);
  c->closed = true;
  c->code = r->code;
  snprintf(c->message, sizeof(c->message), "%s", r->message);
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

typedef struct bench_s {
  sink_t sink;
  trb_rpc_server_t *srv;
  trb_rpc_loop_t *loop;
  trb_rpc_channel_t *ch;
} bench_t;

/* One measured result. */
typedef struct sample_s {
  double secs;
  double cpu_secs;
  long faults; /* minor page faults, whole process */
} sample_t;

static long minor_faults(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

/*
 * Stream `n_msgs` messages of `msg_bytes` to the sink and wait for the OK
 * status. Returns 0, or -1 after printing why (stream error, or the server
 * counted something other than what was sent).
 */
static int run_rpc(bench_t *b, size_t msg_bytes, int64_t n_msgs,
                   int64_t window, sample_t *out) {
  static const trb_rpc_stream_cbs_t cbs = {
      client_on_message, client_on_write_done, client_on_close};
  client_t c;
  trb_rpc_stream_t *s = NULL;
  trb_status_t st;
  uint8_t *payload = trb_malloc(msg_bytes);
  int64_t seen_written = 0, t0, cpu0, i;
  long flt0 = minor_faults();
  int rc = -1;

  if (payload == NULL) return -1;
  memset(payload, 0xa5, msg_bytes);
  memset(&c, 0, sizeof(c));
  pthread_mutex_init(&c.mu, NULL);
  pthread_cond_init(&c.cv, NULL);
  pthread_mutex_lock(&b->sink.mu);
  b->sink.bytes = b->sink.messages = -1;
  pthread_mutex_unlock(&b->sink.mu);

  t0 = trb_clock_mono_ns();
  cpu0 = trb_clock_cpu_ns();
  if (trb_rpc_stream_start(b->loop, b->ch, METHOD, NULL, &cbs, &c, &s, &st) !=
      GRPC_STATUS_OK) {
    fprintf(stderr, "rpc_bench: stream start: %s\n", st.msg);
    goto done;
  }
  for (i = 0; i < n_msgs; i++) {
    if (i - seen_written >= window) {
      pthread_mutex_lock(&c.mu);
      c.wake_at = i - window / 2;
      while (c.written < c.wake_at && !c.closed && c.failed == 0) {
        c.waiting = true;
        pthread_cond_wait(&c.cv, &c.mu);
      }
      seen_written = c.written;
      pthread_mutex_unlock(&c.mu);
    }
    if (trb_rpc_stream_write(s, payload, msg_bytes, NULL) != GRPC_STATUS_OK) {
      fprintf(stderr, "rpc_bench: write %lld refused\n", (long long)i);
      break;
    }
  }
  trb_rpc_stream_writes_done(s);
  pthread_mutex_lock(&c.mu);
  while (!c.closed) pthread_cond_wait(&c.cv, &c.mu);
  pthread_mutex_unlock(&c.mu);
  out->secs = (double)(trb_clock_mono_ns() - t0) / 1e9;
  out->cpu_secs = (double)(trb_clock_cpu_ns() - cpu0) / 1e9;
  out->faults = minor_faults() - flt0;

  pthread_mutex_lock(&b->sink.mu);
  if (c.code != GRPC_STATUS_OK || c.failed != 0 || c.written != n_msgs) {
    fprintf(stderr, "rpc_bench: stream ended %d \"%s\", %lld/%lld writes "
            "done, %lld failed\n", (int)c.code, c.message,
            (long long)c.written, (long long)n_msgs, (long long)c.failed);
  } else if (b->sink.messages != n_msgs ||
             b->sink.bytes != n_msgs * (int64_t)msg_bytes) {
    fprintf(stderr, "rpc_bench: server counted %lld msgs / %lld bytes\n",
            (long long)b->sink.messages, (long long)b->sink.bytes);
  } else {
    rc = 0;
  }
  pthread_mutex_unlock(&b->sink.mu);

done:
  trb_rpc_stream_release(s);
  pthread_cond_destroy(&c.cv);
  pthread_mutex_destroy(&c.mu);
  trb_free(payload);
  return rc;
}

/* ---- raw TCP baseline -------------------------------------------------- */

typedef struct raw_side_s {
  int fd;
  bool writer;
  size_t msg_bytes;
  int64_t n_msgs;
  int64_t done_msgs; /* written by the side's thread, read after join */
  int err;           /* 0 or errno */
} raw_side_t;

/* One side of the raw transfer: write, or read, n_msgs units of msg_bytes
 * (a reader asks for at most the rest of the current message, as a framed
 * receiver would). */
static void *raw_side_main(void *arg) {
  raw_side_t *r = arg;
  uint8_t *buf = malloc(r->msg_bytes);

  if (buf == NULL) {
    r->err = ENOMEM;
    return NULL;
  }
  memset(buf, 0xa5, r->msg_bytes);
  for (; r->done_msgs < r->n_msgs; r->done_msgs++) {
    size_t off = 0;
    while (off < r->msg_bytes) {
      ssize_t n = r->writer ? write(r->fd, buf + off, r->msg_bytes - off)
                            : read(r->fd, buf + off, r->msg_bytes - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        r->err = n == 0 ? ECONNRESET : errno;
        goto out;
      }
      off += (size_t)n;
    }
  }
out:
  free(buf);
  return NULL;
}

/* A connected TCP pair on 127.0.0.1 (TCP_NODELAY, as gRPC sets). Returns 0
 * or -errno. */
static int raw_pair(int *wfd, int *rfd) {
  struct sockaddr_in a;
  socklen_t alen = sizeof(a);
  int one = 1, lfd, cfd = -1, afd = -1, err;

  lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lfd < 0) return -errno;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 1) != 0 ||
      getsockname(lfd, (struct sockaddr *)&a, &alen) != 0) {
    goto fail;
  }
  cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (cfd < 0 || connect(cfd, (struct sockaddr *)&a, sizeof(a)) != 0) goto fail;
  afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  if (afd < 0) goto fail;
  setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  setsockopt(afd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  close(lfd);
  *wfd = cfd;
  *rfd = afd;
  return 0;

fail:
  err = -errno;
  if (cfd >= 0) close(cfd);
  close(lfd);
  return err;
}

static int run_raw(size_t msg_bytes, int64_t n_msgs, sample_t *out) {
  raw_side_t w, r;
  pthread_t wt, rt;
  int64_t t0, cpu0;
  long flt0 = minor_faults();
  int rc;

  memset(&w, 0, sizeof(w));
  memset(&r, 0, sizeof(r));
  if ((rc = raw_pair(&w.fd, &r.fd)) != 0) {
    fprintf(stderr, "rpc_bench: raw socket pair: %s\n", strerror(-rc));
    return -1;
  }
  w.writer = true;
  w.msg_bytes = r.msg_bytes = msg_bytes;
  w.n_msgs = r.n_msgs = n_msgs;
  t0 = trb_clock_mono_ns();
  cpu0 = trb_clock_cpu_ns();
  if (pthread_create(&rt, NULL, raw_side_main, &r) != 0) {
    w.err = r.err = EAGAIN;
  } else {
    if (pthread_create(&wt, NULL, raw_side_main, &w) != 0) {
      w.err = EAGAIN;
      shutdown(w.fd, SHUT_RDWR); /* the reader sees EOF */
    } else {
      pthread_join(wt, NULL);
    }
    pthread_join(rt, NULL);
  }
  out->secs = (double)(trb_clock_mono_ns() - t0) / 1e9;
  out->cpu_secs = (double)(trb_clock_cpu_ns() - cpu0) / 1e9;
  out->faults = minor_faults() - flt0;
  close(w.fd);
  close(r.fd);
  if (w.err || r.err || r.done_msgs != n_msgs) {
    fprintf(stderr, "rpc_bench: raw: writer %s, reader %s, %lld/%lld msgs\n",
            strerror(w.err), strerror(r.err), (long long)r.done_msgs,
            (long long)n_msgs);
    return -1;
  }
  return 0;
}

/* ---- setup, flags, report ---------------------------------------------- */

static int bench_start(bench_t *b) {
  static const trb_rpc_stream_handler_t h = {
      sink_on_start, sink_on_message, sink_on_half_close, sink_on_done};
  trb_rpc_server_config_t scfg;
  trb_rpc_channel_config_t ccfg;
  trb_status_t st;
  char target[64];
  int port = 0;

  trb_status_clear(&st);
  memset(&scfg, 0, sizeof(scfg));
  scfg.host = "127.0.0.1";
  scfg.n_threads = 1;
  if (trb_rpc_server_create(&scfg, &b->srv, &st) != GRPC_STATUS_OK ||
      trb_rpc_server_add_stream(b->srv, METHOD, &h, &b->sink, &st) !=
          GRPC_STATUS_OK ||
      trb_rpc_server_start(b->srv, &port, &st) != GRPC_STATUS_OK ||
      trb_rpc_loop_create("bench-client", &b->loop, &st) != GRPC_STATUS_OK) {
    fprintf(stderr, "rpc_bench: setup: %s\n", st.msg);
    return -1;
  }
  snprintf(target, sizeof(target), "127.0.0.1:%d", port);
  memset(&ccfg, 0, sizeof(ccfg));
  ccfg.target = target;
  ccfg.creds = TRB_RPC_CREDS_INSECURE;
  if (trb_rpc_channel_create(&ccfg, &b->ch, &st) != GRPC_STATUS_OK) {
    fprintf(stderr, "rpc_bench: channel: %s\n", st.msg);
    return -1;
  }
  return 0;
}

static void bench_stop(bench_t *b) {
  trb_rpc_loop_destroy(b->loop);
  trb_rpc_channel_destroy(b->ch);
  trb_rpc_server_destroy(b->srv);
}

static int cmp_double(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

static double median(const double *v, int n) {
  double s[MAX_RUNS];
  memcpy(s, v, (size_t)n * sizeof(double));
  qsort(s, (size_t)n, sizeof(double), cmp_double);
  return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* Parse "--name N" or "--name=N" at argv[*i]; true when it matched. */
static bool flag_int(int argc, char **argv, int *i, const char *name,
                     int64_t lo, int64_t hi, int64_t *out) {
  size_t nl = strlen(name);
  const char *v;
  char *end;
  long long x;

  if (strncmp(argv[*i], name, nl) != 0) return false;
  if (argv[*i][nl] == '=') {
    v = argv[*i] + nl + 1;
  } else if (argv[*i][nl] == '\0' && *i + 1 < argc) {
    v = argv[++*i];
  } else {
    return false;
  }
  errno = 0;
  x = strtoll(v, &end, 10);
  if (errno != 0 || *end != '\0' || x < lo || x > hi) {
    fprintf(stderr, "rpc_bench: %s wants an integer in [%lld, %lld], got "
            "\"%s\"\n", name, (long long)lo, (long long)hi, v);
    exit(2);
  }
  *out = x;
  return true;
}

int main(int argc, char **argv) {
  int64_t runs = 9, total_mib = 512, small_n = 1000000;
  double rpc_mbs[MAX_RUNS], raw_mbs[MAX_RUNS], small_mps[MAX_RUNS];
  double small_cpu[MAX_RUNS], ratios[MAX_RUNS], cpu_ratios[MAX_RUNS];
  bench_t b;
  sample_t sm;
  int64_t big_n;
  double big_mb, ratio;
  int failed = 0;

  /* As `tributary` does at start (src/cli/main.c); applies to both sides. */
  trb_alloc_process_init();
  for (int i = 1; i < argc; i++) {
    if (flag_int(argc, argv, &i, "--runs", 1, MAX_RUNS, &runs) ||
        flag_int(argc, argv, &i, "--total-mib", 1, 1 << 20, &total_mib) ||
        flag_int(argc, argv, &i, "--messages", 1, INT64_C(1) << 40,
                 &small_n)) {
      continue;
    }
    fprintf(stderr, "usage: rpc_bench [--runs N] [--total-mib N] "
            "[--messages N]\n");
    return 2;
  }
  big_n = total_mib * 1024 * 1024 / (int64_t)BIG_MSG_BYTES;
  big_mb = (double)big_n * (double)BIG_MSG_BYTES / 1e6;
  printf("rpc_bench: %lld runs; (a) %lld x 64 KiB (%lld MiB) rpc vs raw TCP; "
         "(b) %lld x 600 B rpc; %ld CPUs; GLIBC_TUNABLES=%s\n",
         (long long)runs, (long long)big_n, (long long)total_mib,
         (long long)small_n, sysconf(_SC_NPROCESSORS_ONLN),
         getenv("GLIBC_TUNABLES") ? getenv("GLIBC_TUNABLES") : "(unset)");

  memset(&b, 0, sizeof(b));
  pthread_mutex_init(&b.sink.mu, NULL);
  trb_rpc_init();
  if (bench_start(&b) != 0 ||
      run_rpc(&b, BIG_MSG_BYTES, 256, BIG_WINDOW_MSGS, &sm) != 0) { /* warm */
    failed = 1;
    goto out;
  }
  for (int r = 0; r < runs; r++) {
    sample_t rs, ws;
    if (run_rpc(&b, BIG_MSG_BYTES, big_n, BIG_WINDOW_MSGS, &rs) != 0 ||
        run_raw(BIG_MSG_BYTES, big_n, &ws) != 0 ||
        run_rpc(&b, SMALL_MSG_BYTES, small_n, SMALL_WINDOW_MSGS, &sm) != 0) {
      failed = 1;
      goto out;
    }
    rpc_mbs[r] = big_mb / rs.secs;
    raw_mbs[r] = big_mb / ws.secs;
    /* Paired within one run, so drift between runs (this VM's CPU steal
     * varies by the second) cancels out. */
    ratios[r] = rpc_mbs[r] / raw_mbs[r];
    cpu_ratios[r] = ws.cpu_secs / rs.cpu_secs;
    small_mps[r] = (double)small_n / sm.secs;
    small_cpu[r] = sm.cpu_secs * 1e6 / (double)small_n;
    printf("run %d/%lld  64KiB rpc %7.1f MB/s (%.3f s, cpu %.2f s, %.1f "
           "faults/msg)  raw %7.1f MB/s (%.3f s, cpu %.2f s)  ratio %.2f\n",
           r + 1, (long long)runs, rpc_mbs[r], rs.secs, rs.cpu_secs,
           (double)rs.faults / (double)big_n, raw_mbs[r], ws.secs,
           ws.cpu_secs, rpc_mbs[r] / raw_mbs[r]);
    printf("run %d/%lld  600B  rpc %9.0f msg/s (%.3f s, cpu %.2f s)  "
           "%.2f cpu-s per million msgs\n",
           r + 1, (long long)runs, small_mps[r], sm.secs, sm.cpu_secs,
           small_cpu[r]);
    fflush(stdout);
  }
  ratio = median(ratios, (int)runs);
  printf("\nrpc_bench: 64KiB stream  median rpc %.1f MB/s  raw tcp %.1f MB/s"
         "  median paired ratio %.3f (target >= 0.5%s)  CPU-cost ratio "
         "raw/rpc %.3f\n",
         median(rpc_mbs, (int)runs), median(raw_mbs, (int)runs), ratio,
         ratio >= 0.5 ? "" : ": NOT MET", median(cpu_ratios, (int)runs));
  printf("rpc_bench: 600B stream   median %.0f msg/s  cpu %.2f s per million "
         "messages\n", median(small_mps, (int)runs),
         median(small_cpu, (int)runs));
  /* Machine-readable medians for perf/run_all.sh. */
  printf("RESULT rpc_mbs=%.1f raw_mbs=%.1f ratio=%.3f small_msgs=%.0f "
         "small_cpu_per_m=%.2f\n",
         median(rpc_mbs, (int)runs), median(raw_mbs, (int)runs), ratio,
         median(small_mps, (int)runs), median(small_cpu, (int)runs));

out:
  bench_stop(&b);
  trb_rpc_shutdown();
  pthread_mutex_destroy(&b.sink.mu);
  return failed;
}
