/*
 * source.c — see source.h.
 */
#include "src/gen/source.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "src/bigquery/transcode.h"
#include "src/common/alloc.h"

struct trb_gen_source_s {
  trb_buf_t files; /* all lines, '\n'-separated */
  size_t pos;
  uint64_t lines;
  char *replay_path, *replay_topic;
  trb_gen_t gen;
  int64_t gen_left; /* < 0: unlimited */
  trb_buf_t cur;
};

static int read_file(const char *path, trb_buf_t *out) {
  FILE *f = fopen(path, "rb");
  if (!f) return -errno;
  char buf[65536];
  size_t n;
  int rc = 0;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    if (trb_buf_append(out, buf, n) != 0) {
      rc = -ENOMEM;
      break;
    }
  if (!rc && ferror(f)) rc = -EIO;
  fclose(f);
  if (!rc && out->len && out->data[out->len - 1] != '\n')
    rc = trb_buf_append(out, "\n", 1) ? -ENOMEM : 0;
  return rc;
}

trb_gen_source_t *trb_gen_source_create(const char *const *files,
                                        size_t n_files,
                                        const char *replay_path,
                                        const char *replay_topic,
                                        const trb_gen_config_t *gen_cfg,
                                        int64_t gen_events, char *err,
                                        size_t err_len) {
  trb_gen_source_t *s = trb_calloc(1, sizeof(*s));
  if (!s) {
    snprintf(err, err_len, "out of memory");
    return NULL;
  }
  trb_buf_init(&s->files);
  trb_buf_init(&s->cur);
  s->replay_path = trb_strdup(replay_path ? replay_path : "/events");
  s->replay_topic = trb_strdup(replay_topic ? replay_topic : "backend-events");
  if (!s->replay_path || !s->replay_topic) {
    snprintf(err, err_len, "out of memory");
    trb_gen_source_destroy(s);
    return NULL;
  }
  for (size_t i = 0; i < n_files; i++) {
    int rc = read_file(files[i], &s->files);
    if (rc) {
      snprintf(err, err_len, "%s: %s", files[i], strerror(-rc));
      trb_gen_source_destroy(s);
      return NULL;
    }
  }
  for (size_t i = 0; i < s->files.len;) {
    const char *nl = memchr(s->files.data + i, '\n', s->files.len - i);
    size_t ln = (size_t)(nl - (s->files.data + i));
    bool blank = true;
    for (size_t j = 0; j < ln; j++) {
      char c = s->files.data[i + j];
      if (c != ' ' && c != '\t' && c != '\r') blank = false;
    }
    s->lines += !blank;
    i += ln + 1;
  }
  trb_gen_init(&s->gen, gen_cfg);
  s->gen_left = gen_events;
  return s;
}

static bool one_object(const char *p, size_t n) {
  trb_status_t st = {0};
  size_t i = 0;
  while (i < n && (p[i] == ' ' || p[i] == '\t')) i++;
  if (i == n || p[i] != '{') return false;
  return trb_bq_json_check(p, n, &st) == GRPC_STATUS_OK;
}

bool trb_gen_source_next(trb_gen_source_t *s, trb_gen_item_t *it) {
  memset(it, 0, sizeof(*it));
  while (s->pos < s->files.len) {
    const char *line = s->files.data + s->pos;
    const char *nl = memchr(line, '\n', s->files.len - s->pos);
    size_t ln = (size_t)(nl - line);
    s->pos += ln + 1;
    if (ln && line[ln - 1] == '\r') ln--;
    bool blank = true;
    for (size_t j = 0; j < ln; j++)
      if (line[j] != ' ' && line[j] != '\t') blank = false;
    if (blank) continue;
    it->json = line;
    it->len = ln;
    it->path = s->replay_path;
    it->topic = s->replay_topic;
    it->batchable = one_object(line, ln);
    it->replayed = true;
    return true;
  }
  if (s->gen_left == 0) return false;
  if (s->gen_left > 0) s->gen_left--;
  trb_buf_reset(&s->cur);
  if (trb_gen_next(&s->gen, &s->cur, &it->ev) != 0) return false;
  it->json = s->cur.data;
  it->len = s->cur.len;
  it->path = it->ev.path;
  it->topic = it->ev.topic;
  it->batchable = it->ev.defect != TRB_GEN_BROKEN_JSON;
  return true;
}

uint64_t trb_gen_source_replay_lines(const trb_gen_source_t *s) {
  return s->lines;
}

void trb_gen_source_destroy(trb_gen_source_t *s) {
  if (!s) return;
  trb_buf_deinit(&s->files);
  trb_buf_deinit(&s->cur);
  trb_free(s->replay_path);
  trb_free(s->replay_topic);
  trb_free(s);
}
