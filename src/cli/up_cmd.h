/*
 * up_cmd.h — `tributary up`: the whole example pipeline on one machine.
 */
#ifndef TRB_SRC_CLI_UP_CMD_H
#define TRB_SRC_CLI_UP_CMD_H

#ifdef __cplusplus
extern "C" {
#endif

/**
 * `tributary up [--data-dir DIR] [--events N | --duration D] [--rate R]
 * [--corpus FILE[,FILE...]] [FILE...] [--keep-running]`.
 * Starts, as child processes of this one, `tributary emulator` (durable in
 * DIR, seeded from examples/emulator.json and examples/tables), `tributary
 * ingest` (routes "/" → issues wrapped, "/events" → backend-events raw,
 * "/orders" → raw-orders raw) and one `tributary stream` per example
 * pipeline (WAL under DIR); sends the corpus files then generated events
 * through ingest; shows progress; waits until rows + dead letters account
 * for every accepted event; prints a summary and stops the children
 * (unless --keep-running: then on Ctrl-C).
 * Returns the exit code: 0 when the numbers add up, 1 when they do not
 * (or a child failed), 2 for bad usage, 130 after Ctrl-C.
 * Call from the main thread (children die with it: PR_SET_PDEATHSIG).
 */
int trb_cli_up(int argc, char **argv);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_CLI_UP_CMD_H */
