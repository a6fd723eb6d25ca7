/*
 * main.c — the `tributary` binary: dispatch to a subcommand.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/cli/emulator_cmd.h"
#include "src/cli/gen_cmd.h"
#include "src/cli/ingest_cmd.h"
#include "src/cli/selfcheck.h"
#include "src/cli/stream_cmd.h"
#include "src/cli/up_cmd.h"
#include "src/common/alloc.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: tributary <command> [options]\n"
          "\n"
          "commands:\n"
          "  up          the whole example pipeline on this machine, fed with\n"
          "              generated events (`tributary up --help`)\n"
          "  emulator    local, durable Pub/Sub and BigQuery Storage Write\n"
          "              services (see `tributary emulator --help`)\n"
          "  ingest      HTTP front end: JSON, NDJSON, CloudEvents and Pub/Sub\n"
          "              push bodies in, Pub/Sub out (`tributary ingest --help`)\n"
          "  stream      Pub/Sub subscription to BigQuery tables, exactly once\n"
          "              (`tributary stream --help`)\n"
          "  gen         generated events (and JSON Lines replays) to ingest,\n"
          "              Pub/Sub or stdout (`tributary gen --help`)\n"
          "  sql         query the emulator's BigQuery tables\n"
          "  selfcheck   start an rpc server and client on 127.0.0.1 and\n"
          "              print their round-trip figures\n");
}

int main(int argc, char **argv) {
  trb_alloc_process_init();
  /* Under `bazel run` the process starts in its runfiles tree; relative
   * paths on the command line mean the caller's directory. */
  const char *wd = getenv("BUILD_WORKING_DIRECTORY");
  if (wd && *wd && chdir(wd) != 0) {
    fprintf(stderr, "tributary: cannot enter %s\n", wd);
    return 2;
  }
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (strcmp(argv[1], "emulator") == 0) {
    return trb_cli_emulator(argc - 2, argv + 2);
  }
  if (strcmp(argv[1], "up") == 0) return trb_cli_up(argc - 2, argv + 2);
  if (strcmp(argv[1], "gen") == 0) return trb_cli_gen(argc - 2, argv + 2);
  if (strcmp(argv[1], "ingest") == 0) return trb_cli_ingest(argc - 2, argv + 2);
  if (strcmp(argv[1], "stream") == 0) return trb_cli_stream(argc - 2, argv + 2);
  if (strcmp(argv[1], "sql") == 0) {
    return trb_cli_sql(argc - 2, argv + 2);
  }
  if (strcmp(argv[1], "selfcheck") == 0) {
    return trb_cli_selfcheck(argc - 2, argv + 2);
  }
  if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0) {
    usage(stdout);
    return 0;
  }
  fprintf(stderr, "tributary: unknown command \"%s\"\n", argv[1]);
  usage(stderr);
  return 2;
}
