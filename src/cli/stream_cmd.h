/*
 * stream_cmd.h — `tributary stream`: the streamer's main (src/streamer).
 */
#ifndef TRB_SRC_CLI_STREAM_CMD_H
#define TRB_SRC_CLI_STREAM_CMD_H

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Run `tributary stream [--pipeline FILE] [--<key> VALUE ...]` until
 * SIGTERM / SIGINT (then drain within the grace period).
 * Settings: defaults < pipeline file < TRIBUTARY_STREAM_* environment <
 * flags. Endpoints: PUBSUB_EMULATOR_HOST / BIGQUERY_STORAGE_EMULATOR_HOST
 * (plaintext) when set, else pubsub.googleapis.com:443 and
 * bigquerystorage.googleapis.com:443 with Application Default Credentials.
 * Returns: the process exit code: 0 after a clean drain, 1 when the
 *          streamer could not start or the grace period ran out, 2 for a
 *          configuration error.
 */
int trb_cli_stream(int argc, char **argv);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_CLI_STREAM_CMD_H */
