/*
 * emulator.h — one `tributary emulator`: the Pub/Sub server and the
 * BigQuery Storage Write server, their databases, the fault registry, and
 * the resources declared by --config / --tables.
 *
 * Both servers also serve `tributary.emulator.v1.EmulatorAdmin`
 * (proto/tributary/emulator/v1/admin.proto): fault injection over gRPC for
 * tests running in other processes (InjectFault, ClearFaults, DropStreams).
 *
 * Data directory layout (--data-dir DIR):
 *   DIR/LOCK             flock()ed while an emulator uses DIR: a second
 *                        emulator on the same DIR fails at start
 *   DIR/pubsub.sqlite    Pub/Sub (src/emulator/pubsub)
 *   DIR/bigquery...      BigQuery (trb_bqemu_db_path(), src/emulator/bigquery)
 *
 * Source: issue 3; ../shared/DESIGN.md "The emulator".
 */
#ifndef TRB_SRC_EMULATOR_EMULATOR_H
#define TRB_SRC_EMULATOR_EMULATOR_H

#include <stdbool.h>

#include <grpc/status.h>

#include "src/common/status.h"
#include "src/emulator/bigquery/bigquery.h"
#include "src/emulator/faults.h"
#include "src/emulator/pubsub/pubsub.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct trb_emulator_s trb_emulator_t;

/** Settings. Zero-initialize, then set what you need. Strings borrowed
 *  for the duration of trb_emulator_start. */
typedef struct trb_emulator_config_s {
  /** Address both servers bind; NULL = "127.0.0.1". */
  const char *host;
  /** Ports; 0 = pick a free port (read it back with the accessors). */
  int pubsub_port;
  int bigquery_port;
  /** Data directory (created if missing); NULL = everything in memory. */
  const char *data_dir;
  /** Project for short names and tables; NULL = the config file's, else
   *  "local-project". */
  const char *project;
  /** Directory of table files to create at start (see
   *  src/bigquery/schema.h for the format); NULL = none. */
  const char *tables_dir;
  /** --config file (see config.h); NULL = none. */
  const char *config_path;
  /** PRAGMA synchronous=FULL: survive power loss, not only kill -9. */
  bool fsync;
  /** gRPC completion-queue threads per server; 0 = 2. */
  int server_threads;
  /** TEST ONLY: see trb_psemu_config_t.test_ms_per_second. */
  int test_ms_per_second;
  /** TLS on both servers: PEM certificate chain and private key (text, not
   *  paths); both NULL = plaintext. Clients then need these roots (or a CA
   *  that signed the chain) — the path a Google Cloud client takes. */
  const char *tls_cert_chain_pem;
  const char *tls_private_key_pem;
  /** Required OAuth2 access token: every call (admin included) must carry
   *  `authorization: Bearer <bearer_token>`, else it is answered
   *  UNAUTHENTICATED with Google's wording (header missing: "Request is
   *  missing required authentication credential..."; other token: "Request
   *  had invalid authentication credentials..."). NULL = no check. Change
   *  it while running with trb_emulator_set_bearer_token (token rotation). */
  const char *bearer_token;
  /** Strict mode: calls to the methods Google's client libraries route
   *  (Publish, Pull, StreamingPull, Acknowledge, ModifyAckDeadline:
   *  subscription= / topic=; AppendRows, FlushRows: write_stream=;
   *  CreateWriteStream, BatchCommitWriteStreams: parent=; GetWriteStream,
   *  FinalizeWriteStream: name=) must carry that key in
   *  `x-goog-request-params`, else INVALID_ARGUMENT naming the method and
   *  the key. Whether Google itself refuses such calls is not documented
   *  (PROTOCOL.md fact 75); this checks that clients send what the official
   *  ones send. */
  bool require_routing_params;
} trb_emulator_config_t;

/**
 * Open the databases, create the declared resources, start both servers.
 * Declared topics, subscriptions and tables that already exist (a restart
 * on the same data directory) are kept as stored.
 * Returns: OK; INVALID_ARGUMENT (bad --config / table file, with the file
 *          and reason; half a TLS pair); FAILED_PRECONDITION (data directory in use by another
 *          emulator); UNAVAILABLE (port in use, unreadable directory);
 *          RESOURCE_EXHAUSTED.
 * Threading: thread-safe (each emulator is independent).
 */
grpc_status_code trb_emulator_start(const trb_emulator_config_t *cfg,
                                    trb_emulator_t **out, trb_status_t *st);

/** The bound ports. Thread-safe. */
int trb_emulator_pubsub_port(const trb_emulator_t *emu);
int trb_emulator_bigquery_port(const trb_emulator_t *emu);

/** The project in use. Borrowed for the emulator's lifetime. */
const char *trb_emulator_project(const trb_emulator_t *emu);

/**
 * Replace the required bearer token (see trb_emulator_config_t.bearer_token),
 * as when an access token expires and a new one is issued: calls that
 * start afterwards must carry `token`; calls already admitted go on.
 * NULL = stop checking. Returns OK; RESOURCE_EXHAUSTED (then the previous
 * token stays). Threading: thread-safe.
 */
grpc_status_code trb_emulator_set_bearer_token(trb_emulator_t *emu,
                                               const char *token,
                                               trb_status_t *st);

/** The fault registry (tests inject faults directly). Borrowed. */
trb_faults_t *trb_emulator_faults(trb_emulator_t *emu);

/** The services (tests). Borrowed. */
trb_psemu_t *trb_emulator_pubsub(trb_emulator_t *emu);
trb_bqemu_t *trb_emulator_bigquery(trb_emulator_t *emu);

/**
 * Stop cleanly: end open streams with UNAVAILABLE, shut both servers down,
 * finish pending writes, close the databases, release the data directory.
 * NULL-safe. Threading: owner only; not from a server thread.
 */
void trb_emulator_stop(trb_emulator_t *emu);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_EMULATOR_EMULATOR_H */
