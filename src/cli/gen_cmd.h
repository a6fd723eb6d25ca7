/*
 * gen_cmd.h — `tributary gen`: generated (and replayed) events to ingest
 * over HTTP, to Pub/Sub directly, or to stdout.
 */
#ifndef TRB_SRC_CLI_GEN_CMD_H
#define TRB_SRC_CLI_GEN_CMD_H

#ifdef __cplusplus
extern "C" {
#endif

/**
 * `tributary gen [--target http://HOST:PORT | pubsub | stdout]
 * [--events N | --duration D] [--rate R] [--seed S] [--malformed F]
 * [--replay FILE[,FILE...]] [FILE...]`.
 * Replayed JSON Lines go first (to the raw backend-events route), then the
 * generated events (src/gen/gen.h); without --events/--duration 1000 events
 * are generated, none when files are replayed.
 * Returns the exit code: 0 when every event was sent and none failed
 * (ingest refusing a malformed event with 4xx is not a failure), 1
 * otherwise, 2 for bad usage. Call from the main thread.
 */
int trb_cli_gen(int argc, char **argv);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_CLI_GEN_CMD_H */
