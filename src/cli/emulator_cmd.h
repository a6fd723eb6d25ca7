/*
 * emulator_cmd.h — `tributary emulator` and `tributary sql`.
 */
#ifndef TRB_SRC_CLI_EMULATOR_CMD_H
#define TRB_SRC_CLI_EMULATOR_CMD_H

#ifdef __cplusplus
extern "C" {
#endif

/**
 * `tributary emulator [--host H] [--pubsub-port P] [--bigquery-port P]
 * [--data-dir DIR] [--project P] [--tables DIR] [--config FILE] [--fsync]`.
 * Prints `PUBSUB_EMULATOR_HOST=host:port` and
 * `BIGQUERY_STORAGE_EMULATOR_HOST=host:port` on stdout once both services
 * are ready, logs to stderr, stops cleanly on SIGTERM / SIGINT.
 * Returns the exit code: 0 after a clean stop, 1 when it cannot start,
 * 2 for bad usage. Call from the main thread before any other thread.
 */
int trb_cli_emulator(int argc, char **argv);

/**
 * `tributary sql [--data-dir DIR] [--json] "SELECT ..."`: query the
 * emulator's BigQuery tables (read-only; works while it runs).
 * Returns 0, 1 on a query error, 2 for bad usage.
 */
int trb_cli_sql(int argc, char **argv);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_CLI_EMULATOR_CMD_H */
