/*
 * selfcheck.h — `tributary selfcheck`: start an rpc server and a client on
 * 127.0.0.1, run Publish-shaped unary calls and a bidi stream through
 * src/rpc, and print their round-trip figures.
 *
 * Threading: call from the main thread; starts and joins its own threads.
 */
#ifndef TRB_SRC_CLI_SELFCHECK_H
#define TRB_SRC_CLI_SELFCHECK_H

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Run the self-check with command-line arguments after "selfcheck"
 * (`--calls N` unary calls, default 2000; `--messages N` streamed messages,
 * default 100000).
 * Returns: process exit code: 0 when every call succeeded, 1 otherwise,
 *          2 on a usage error.
 */
int trb_cli_selfcheck(int argc, char **argv);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_CLI_SELFCHECK_H */
