/*
 * ingest_cmd.h — `tributary ingest`: the HTTP front end (src/ingest).
 */
#ifndef TRB_SRC_CLI_INGEST_CMD_H
#define TRB_SRC_CLI_INGEST_CMD_H

#ifdef __cplusplus
extern "C" {
#endif

/**
 * `tributary ingest [--port P] [--topic T | --routes SPEC] [--project P]
 * ...` (`tributary ingest --help` lists every flag; each is also read from
 * TRB_INGEST_<FLAG>). Listens on $PORT (default 8080) unless --port is
 * given, publishes to Pub/Sub (PUBSUB_EMULATOR_HOST, else
 * pubsub.googleapis.com with Application Default Credentials), prints
 * `INGEST_URL=http://host:port` on stdout once serving, logs to stderr,
 * and on SIGTERM / SIGINT drains within --grace.
 * Returns the exit code: 0 after a clean stop, 1 when it cannot start or
 * some accepted event could not be confirmed at shutdown (it was answered
 * non-2xx), 2 for bad usage. Call from the main thread before any other
 * thread.
 */
int trb_cli_ingest(int argc, char **argv);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_CLI_INGEST_CMD_H */
