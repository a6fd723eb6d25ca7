/*
 * flags.h — command-line flags onto a src/common/config.h table.
 *
 * `--pubsub-port 0`, `--pubsub-port=0` and, for BOOL entries, a bare
 * `--fsync` (= true) all set the entry "pubsub_port" / "fsync" (dashes in a
 * flag name are underscores in the key). `--` ends the flags. Other
 * arguments are positional and returned in order. `--help` / `-h` is
 * reported to the caller, which prints help.
 */
#ifndef TRB_SRC_CLI_FLAGS_H
#define TRB_SRC_CLI_FLAGS_H

#include <stdbool.h>

#include <grpc/status.h>

#include "src/common/config.h"
#include "src/common/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Apply defaults, then environment variables (`env_prefix` + KEY, NULL =
 * none), then the flags in argv[0..argc) to `cfg`.
 * Params:  positional — receives pointers into argv (borrowed) for the
 *          non-flag arguments, up to `max_positional`; *n_positional their
 *          count. help — set true when --help / -h was given.
 * Returns: OK; INVALID_ARGUMENT ("flag --x: ..." for an unknown flag, a
 *          missing or bad value, a repeated flag, or too many positional
 *          arguments); RESOURCE_EXHAUSTED.
 * Threading: thread-compatible.
 */
grpc_status_code trb_cli_flags_parse(const trb_config_table_t *t, void *cfg,
                                     const char *env_prefix, int argc,
                                     char **argv, char **positional,
                                     int max_positional, int *n_positional,
                                     bool *help, trb_status_t *st);

/** Print "usage: <usage>\n\n" and the table's help to stdout/stderr. */
void trb_cli_flags_usage(const trb_config_table_t *t, const char *usage,
                         const char *env_prefix, bool to_stderr);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_CLI_FLAGS_H */
