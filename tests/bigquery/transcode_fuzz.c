/*
 * transcode_fuzz.c — fuzz target for trb_bq_transcode_row and
 * trb_bq_json_check (libFuzzer entry point LLVMFuzzerTestOneInput).
 *
 * Bazel builds it with gcc as `//tests/bigquery:transcode_fuzz_replay`,
 * a plain binary whose main() replays the files named on the command line
 * (a regression corpus); with clang and libFuzzer:
 *   tests/bigquery/transcode_fuzz.sh (clang -fsanitize=fuzzer,address,
 *   undefined), which bazel/test.sh runs for a bounded time.
 * Invariants checked (abort on violation): the result is OK or
 * INVALID_ARGUMENT (RESOURCE_EXHAUSTED only if memory ran out); on error
 * the output buffer keeps its previous length; an INVALID_ARGUMENT message
 * starts with the JSON path "$".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/bigquery/schema.h"
#include "src/bigquery/transcode.h"
#include "src/common/arena.h"

static const char TABLE[] =
    "[{\"name\":\"s\",\"type\":\"STRING\",\"mode\":\"REQUIRED\"},"
    "{\"name\":\"i\",\"type\":\"INT64\"},{\"name\":\"f\",\"type\":\"FLOAT64\"},"
    "{\"name\":\"b\",\"type\":\"BOOL\"},{\"name\":\"by\",\"type\":\"BYTES\"},"
    "{\"name\":\"ts\",\"type\":\"TIMESTAMP\"},{\"name\":\"d\",\"type\":\"DATE\"},"
    "{\"name\":\"t\",\"type\":\"TIME\"},{\"name\":\"dt\",\"type\":\"DATETIME\"},"
    "{\"name\":\"g\",\"type\":\"GEOGRAPHY\"},{\"name\":\"n\",\"type\":\"NUMERIC\"},"
    "{\"name\":\"bn\",\"type\":\"BIGNUMERIC\"},{\"name\":\"j\",\"type\":\"JSON\"},"
    "{\"name\":\"iv\",\"type\":\"INTERVAL\"},"
    "{\"name\":\"r\",\"type\":\"RECORD\",\"mode\":\"REPEATED\",\"fields\":["
    "{\"name\":\"x\",\"type\":\"INT64\",\"mode\":\"REPEATED\"},"
    "{\"name\":\"y\",\"type\":\"RECORD\",\"fields\":["
    "{\"name\":\"z\",\"type\":\"STRING\",\"mode\":\"REQUIRED\"}]}]}]";

static trb_bq_table_t g_table;
static int g_ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  trb_status_t st;
  if (!g_ready) {
    if (trb_bq_table_parse(TABLE, sizeof TABLE - 1, &g_table, &st) !=
        GRPC_STATUS_OK)
      abort();
    g_ready = 1;
  }
  trb_buf_t out = TRB_BUF_INIT;
  trb_buf_append(&out, "xy", 2);
  for (int ignore = 0; ignore < 2; ignore++) {
    trb_bq_transcode_opts_t o = {.ignore_unknown_fields = ignore != 0};
    size_t before = out.len;
    grpc_status_code rc = trb_bq_transcode_row(
        &g_table, (const char *)data, size, &o, &out, &st);
    if (rc == GRPC_STATUS_INVALID_ARGUMENT) {
      if (out.len != before || st.msg[0] != '$') abort();
    } else if (rc == GRPC_STATUS_RESOURCE_EXHAUSTED) {
      if (out.len != before) abort();
    } else if (rc != GRPC_STATUS_OK) {
      abort();
    }
  }
  grpc_status_code rc = trb_bq_json_check((const char *)data, size, &st);
  if (rc != GRPC_STATUS_OK && rc != GRPC_STATUS_INVALID_ARGUMENT) abort();
  trb_buf_deinit(&out);
  return 0;
}

#ifndef TRB_FUZZ_LIBFUZZER
/* Replay driver: each argument is a file fed to the target once. */
int main(int argc, char **argv) {
  int n = 0;
  for (int i = 1; i < argc; i++) {
    FILE *f = fopen(argv[i], "rb");
    if (!f) {
      perror(argv[i]);
      return 2;
    }
    static uint8_t buf[1 << 20];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, buf, len);
    LLVMFuzzerTestOneInput(copy, len);
    free(copy);
    n++;
  }
  printf("replayed %d inputs\n", n);
  trb_bq_table_deinit(&g_table);
  return 0;
}
#endif
