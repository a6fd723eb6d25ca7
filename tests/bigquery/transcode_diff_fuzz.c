/*
 * transcode_diff_fuzz.c — differential fuzz target: this tree's
 * src/bigquery/transcode.c against another revision's (its external
 * symbols renamed old_transcode_row / old_json_check at compile time),
 * driven by tests/bigquery/transcode_diff.sh (clang, libFuzzer). Aborts
 * when, for the same input, the two differ in status code, output bytes
 * or error message — for two tables and both ignore_unknown_fields
 * settings; for trb_bq_json_check; and for trb_bq_transcode_row_extra
 * (a column chosen by the first input byte, the rest as its value) against
 * the other revision's trb_bq_transcode_row on the row text with the
 * member appended (messages compared when the value is valid UTF-8, as
 * documented in transcode.h). Not a Bazel target: it needs the other
 * revision's source.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "src/bigquery/schema.h"
#include "src/bigquery/transcode.h"
#include "src/common/arena.h"

grpc_status_code old_transcode_row(const trb_bq_table_t *t, const char *json, size_t len,
                                   const trb_bq_transcode_opts_t *opts, trb_buf_t *out,
                                   trb_status_t *st);
grpc_status_code old_json_check(const char *json, size_t len, trb_status_t *st);

static const char T1[] =
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
    "{\"name\":\"Long_Name_Of_A_Column_0123456789\",\"type\":\"FLOAT64\",\"mode\":\"REPEATED\"},"
    "{\"name\":\"y\",\"type\":\"RECORD\",\"fields\":["
    "{\"name\":\"z\",\"type\":\"STRING\",\"mode\":\"REQUIRED\"}]}]}]";
static const char T2[] =
    "[{\"name\":\"event_type\",\"type\":\"STRING\",\"mode\":\"REQUIRED\"},"
    "{\"name\":\"order_id\",\"type\":\"STRING\"},"
    "{\"name\":\"customer_id\",\"type\":\"STRING\"},"
    "{\"name\":\"order_date\",\"type\":\"TIMESTAMP\"},"
    "{\"name\":\"status\",\"type\":\"STRING\"},"
    "{\"name\":\"total_amount\",\"type\":\"NUMERIC\"},"
    "{\"name\":\"currency\",\"type\":\"STRING\"},"
    "{\"name\":\"event_date\",\"type\":\"DATE\"},"
    "{\"name\":\"items\",\"type\":\"RECORD\",\"mode\":\"REPEATED\",\"fields\":["
    "{\"name\":\"product_id\",\"type\":\"STRING\"},"
    "{\"name\":\"product_name\",\"type\":\"STRING\"},"
    "{\"name\":\"quantity\",\"type\":\"INT64\"},"
    "{\"name\":\"price\",\"type\":\"NUMERIC\"}]},"
    "{\"name\":\"shipping_address\",\"type\":\"RECORD\",\"fields\":["
    "{\"name\":\"street\",\"type\":\"STRING\"},"
    "{\"name\":\"city\",\"type\":\"STRING\"},"
    "{\"name\":\"country\",\"type\":\"STRING\"}]}]";

static trb_bq_table_t g_t[2];
static int g_ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  trb_status_t st, st2;
  if (!g_ready) {
    if (trb_bq_table_parse(T1, sizeof T1 - 1, &g_t[0], &st) != GRPC_STATUS_OK) abort();
    if (trb_bq_table_parse(T2, sizeof T2 - 1, &g_t[1], &st) != GRPC_STATUS_OK) abort();
    g_ready = 1;
  }
  for (int t = 0; t < 2; t++)
    for (int ignore = 0; ignore < 2; ignore++) {
      trb_bq_transcode_opts_t o = {.ignore_unknown_fields = ignore != 0};
      trb_buf_t a = TRB_BUF_INIT, b = TRB_BUF_INIT;
      trb_buf_append(&a, "xy", 2);
      trb_buf_append(&b, "xy", 2);
      memset(&st, 0, sizeof st);
      memset(&st2, 0, sizeof st2);
      grpc_status_code ra = trb_bq_transcode_row(&g_t[t], (const char *)data, size, &o, &a, &st);
      grpc_status_code rb = old_transcode_row(&g_t[t], (const char *)data, size, &o, &b, &st2);
      if (ra != rb || a.len != b.len || memcmp(a.data, b.data, a.len + 1) != 0 ||
          (ra != GRPC_STATUS_OK && strcmp(st.msg, st2.msg) != 0)) {
        fprintf(stderr, "DIFF t=%d ignore=%d rc %d/%d len %zu/%zu\nnew: %s\nold: %s\n", t, ignore,
                ra, rb, a.len, b.len, ra ? st.msg : "", rb ? st2.msg : "");
        abort();
      }
      trb_buf_deinit(&a);
      trb_buf_deinit(&b);
    }
  /* Extras vs the row text with the members appended. */
  {
    static const char *cols[] = {"s", "i", "f", "b", "by", "ts", "d", "t", "dt",
                                 "g", "n", "bn", "j", "iv", "r", "S", "nope"};
    size_t ncols = sizeof cols / sizeof *cols;
    const char *col = cols[size ? data[0] % ncols : 0];
    const char *v = size ? (const char *)data + 1 : "";
    size_t vn = size ? size - 1 : 0;
    int valid = 1;
    for (size_t i = 0; i < vn;) {
      unsigned char ch = (unsigned char)v[i];
      if (ch < 0x80) { i++; continue; }
      int k = ch >= 0xc2 && ch <= 0xdf ? 2 : ch >= 0xe0 && ch <= 0xef ? 3 : ch >= 0xf0 && ch <= 0xf4 ? 4 : 0;
      if (!k || i + (size_t)k > vn) { valid = 0; break; }
      uint32_t cp = ch & (k == 2 ? 0x1f : k == 3 ? 0x0f : 0x07);
      for (int j = 1; j < k; j++) {
        if ((v[i + j] & 0xc0) != 0x80) { valid = 0; break; }
        cp = cp << 6 | (v[i + j] & 0x3f);
      }
      if (!valid) break;
      if ((k == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (k == 4 && (cp < 0x10000 || cp > 0x10ffff))) { valid = 0; break; }
      i += (size_t)k;
    }
    static const char *rows[] = {"{\"s\":\"a\"}", "{}", "{\"s\":\"a\",\"ts\":null,\"r\":[{\"x\":[1]}]}", "{\"S\":1,\"g\":\"p\"}"};
    const char *row = rows[size % 4];
    trb_buf_t text = TRB_BUF_INIT;
    trb_buf_append(&text, row, strlen(row) - 1);
    if (strlen(row) > 2) trb_buf_append(&text, ",", 1);
    trb_buf_appendf(&text, "\"%s\":\"", col);
    for (size_t i = 0; i < vn; i++) {
      unsigned char ch = (unsigned char)v[i];
      if (ch == '"' || ch == '\\') { trb_buf_append(&text, "\\", 1); trb_buf_append(&text, &v[i], 1); }
      else if (ch < 0x20) trb_buf_appendf(&text, "\\u%04x", ch);
      else trb_buf_append(&text, &v[i], 1);
    }
    trb_buf_append(&text, "\"}", 2);
    trb_bq_extra_field_t ex = {col, v, vn, false, 0};
    for (int t = 0; t < 2; t++)
      for (int ignore = 0; ignore < 2; ignore++) {
        trb_bq_transcode_opts_t o = {.ignore_unknown_fields = ignore != 0};
        trb_buf_t a = TRB_BUF_INIT, b = TRB_BUF_INIT;
        memset(&st, 0, sizeof st);
        memset(&st2, 0, sizeof st2);
        grpc_status_code ra2 = trb_bq_transcode_row_extra(&g_t[t], row, strlen(row), &ex, 1, &o, &a, &st);
        grpc_status_code rb2 = old_transcode_row(&g_t[t], text.data, text.len, &o, &b, &st2);
        if (ra2 != rb2 || a.len != b.len || (a.len && memcmp(a.data, b.data, a.len) != 0) ||
            (ra2 != GRPC_STATUS_OK && valid && strcmp(st.msg, st2.msg) != 0)) {
          fprintf(stderr, "DIFF extra t=%d ignore=%d rc %d/%d len %zu/%zu\ntext: %s\nnew: %s\nold: %s\n", t, ignore,
                  ra2, rb2, a.len, b.len, text.data, ra2 ? st.msg : "", rb2 ? st2.msg : "");
          abort();
        }
        trb_buf_deinit(&a);
        trb_buf_deinit(&b);
      }
    trb_buf_deinit(&text);
  }
  grpc_status_code ra = trb_bq_json_check((const char *)data, size, &st);
  grpc_status_code rb = old_json_check((const char *)data, size, &st2);
  if (ra != rb || (ra && strcmp(st.msg, st2.msg))) {
    fprintf(stderr, "DIFF check\nnew: %s\nold: %s\n", st.msg, st2.msg);
    abort();
  }
  return 0;
}
