/*
 * flags.c — argv onto a config table (see flags.h).
 */
#include "src/cli/flags.h"

#include <stdio.h>
#include <string.h>

#include "src/common/arena.h"

grpc_status_code trb_cli_flags_parse(const trb_config_table_t *t, void *cfg,
                                     const char *env_prefix, int argc,
                                     char **argv, char **positional,
                                     int max_positional, int *n_positional,
                                     bool *help, trb_status_t *st) {
  *n_positional = 0;
  *help = false;
  grpc_status_code code = trb_config_defaults(t, cfg, st);
  if (code == GRPC_STATUS_OK && env_prefix)
    code = trb_config_apply_env(t, cfg, env_prefix, st);
  if (code != GRPC_STATUS_OK) return code;
  trb_config_seen_t *seen = trb_config_seen_create(t);
  if (!seen) return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "flags");
  bool flags_done = false;
  for (int i = 0; i < argc && code == GRPC_STATUS_OK; i++) {
    const char *a = argv[i];
    if (flags_done || a[0] != '-' || a[1] == '\0') {
      if (*n_positional == max_positional) {
        code = trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                              "unexpected argument \"%s\"", a);
        break;
      }
      positional[(*n_positional)++] = argv[i];
      continue;
    }
    if (strcmp(a, "--") == 0) {
      flags_done = true;
      continue;
    }
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      *help = true;
      continue;
    }
    if (a[1] != '-') {
      code = trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "unknown flag %s (flags are --name value)", a);
      break;
    }
    char key[128];
    const char *eq = strchr(a + 2, '=');
    size_t klen = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
    if (klen == 0 || klen >= sizeof(key)) {
      code = trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT, "bad flag %s", a);
      break;
    }
    for (size_t k = 0; k < klen; k++) key[k] = a[2 + k] == '-' ? '_' : a[2 + k];
    key[klen] = '\0';
    char source[160];
    snprintf(source, sizeof(source), "flag --%.*s", (int)klen, a + 2);
    const trb_config_entry_t *e = trb_config_find(t, key);
    if (!e) {
      code = trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "%s: unknown flag (see --help)", source);
      break;
    }
    const char *value;
    if (eq) {
      value = eq + 1;
    } else if (e->type == TRB_CONFIG_BOOL) {
      value = "true";
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      code = trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "%s: needs a value", source);
      break;
    }
    code = trb_config_set(t, cfg, seen, key, value, source, st);
  }
  trb_config_seen_destroy(seen);
  return code;
}

void trb_cli_flags_usage(const trb_config_table_t *t, const char *usage,
                         const char *env_prefix, bool to_stderr) {
  FILE *out = to_stderr ? stderr : stdout;
  fprintf(out, "usage: %s\n\n", usage);
  trb_buf_t buf;
  trb_buf_init(&buf);
  trb_status_t st = {0};
  if (trb_config_help(t, env_prefix, &buf, &st) == GRPC_STATUS_OK) {
    fwrite(buf.data, 1, buf.len, out);
  }
  trb_buf_deinit(&buf);
}
