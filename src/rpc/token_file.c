/*
 * token_file.c — call credentials that read an OAuth2 access token from a
 * file and read it again whenever the file changes (see
 * trb_rpc_channel_config_t.bearer_token_file in rpc.h).
 *
 * gRPC calls get_metadata for every call; it stat()s the file and re-reads
 * it when its inode, size or modification time differ from the last read.
 * A file that cannot be read (or is empty) at that moment leaves the last
 * good token in use; before any good read the call fails UNAUTHENTICATED
 * naming the file.
 *
 * Source: gRPC C core 1.51 grpc_security.h
 * (grpc_metadata_credentials_create_from_plugin, synchronous get_metadata).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/string_util.h>

#include "src/common/alloc.h"
#include "src/rpc/rpc_internal.h"

/* Longest token accepted (Google access tokens are ~200-2,000 bytes). */
#define TOKEN_MAX 8192

typedef struct token_file_s {
  char *path;
  pthread_mutex_t mu; /* guards the fields below */
  char *header;       /* "Bearer <token>", NULL before the first good read */
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime;
  bool have_stat;
} token_file_t;

/* Read and trim the file; returns a heap "Bearer <token>" or NULL with
 * `err` set (a message). Pure apart from the read. */
static char *read_token(const char *path, char *err, size_t err_cap) {
  char buf[TOKEN_MAX + 1];
  size_t n = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, err_cap, "%s", strerror(errno));
    return NULL;
  }
  for (;;) {
    ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      snprintf(err, err_cap, "%s", strerror(errno));
      close(fd);
      return NULL;
    }
    if (r == 0) break;
    n += (size_t)r;
    if (n == sizeof(buf) - 1) {
      snprintf(err, err_cap, "longer than %d bytes", TOKEN_MAX);
      close(fd);
      return NULL;
    }
  }
  close(fd);
  buf[n] = '\0';
  /* Trim surrounding white space (a trailing newline is usual). */
  char *s = buf;
  while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
  char *e = s + strlen(s);
  while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' ||
                   e[-1] == '\r')) {
    e--;
  }
  *e = '\0';
  if (*s == '\0') {
    snprintf(err, err_cap, "empty");
    return NULL;
  }
  for (const char *p = s; *p; p++) {
    if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e) {
      snprintf(err, err_cap, "not a token (byte 0x%02x at %zu)",
               (unsigned char)*p, (size_t)(p - s));
      return NULL;
    }
  }
  size_t len = strlen(s);
  char *h = trb_malloc(len + 8);
  if (h == NULL) {
    snprintf(err, err_cap, "out of memory");
    return NULL;
  }
  memcpy(h, "Bearer ", 7);
  memcpy(h + 7, s, len + 1);
  return h;
}

/* Locked. Re-read when the file changed; `err` set when no token is
 * available at all. */
static void refresh_locked(token_file_t *t, char *err, size_t err_cap) {
  struct stat sb;
  err[0] = '\0';
  if (stat(t->path, &sb) != 0) {
    if (t->header == NULL) snprintf(err, err_cap, "%s", strerror(errno));
    return;
  }
  if (t->have_stat && t->header != NULL && sb.st_dev == t->dev &&
      sb.st_ino == t->ino && sb.st_size == t->size &&
      sb.st_mtim.tv_sec == t->mtime.tv_sec &&
      sb.st_mtim.tv_nsec == t->mtime.tv_nsec) {
    return;
  }
  char rerr[128];
  char *h = read_token(t->path, rerr, sizeof(rerr));
  if (h == NULL) {
    if (t->header == NULL) snprintf(err, err_cap, "%s", rerr);
    return; /* keep the last good token; try again on the next call */
  }
  trb_free(t->header);
  t->header = h;
  t->dev = sb.st_dev;
  t->ino = sb.st_ino;
  t->size = sb.st_size;
  t->mtime = sb.st_mtim;
  t->have_stat = true;
}

static int get_metadata(
    void *state, grpc_auth_metadata_context context,
    grpc_credentials_plugin_metadata_cb cb, void *user_data,
    grpc_metadata creds_md[GRPC_METADATA_CREDENTIALS_PLUGIN_SYNC_MAX],
    size_t *num_creds_md, grpc_status_code *status,
    const char **error_details) {
  token_file_t *t = state;
  char err[160];
  (void)context;
  (void)cb;
  (void)user_data;
  pthread_mutex_lock(&t->mu);
  refresh_locked(t, err, sizeof(err));
  if (t->header == NULL) {
    pthread_mutex_unlock(&t->mu);
    char msg[512];
    snprintf(msg, sizeof(msg), "access token file %s: %s", t->path, err);
    *num_creds_md = 0;
    *status = GRPC_STATUS_UNAUTHENTICATED;
    *error_details = gpr_strdup(msg);
    return 1;
  }
  creds_md[0].key = grpc_slice_from_static_string("authorization");
  creds_md[0].value = grpc_slice_from_copied_string(t->header);
  pthread_mutex_unlock(&t->mu);
  *num_creds_md = 1;
  *status = GRPC_STATUS_OK;
  *error_details = NULL;
  return 1;
}

static char *debug_string(void *state) {
  token_file_t *t = state;
  char msg[512];
  snprintf(msg, sizeof(msg), "TokenFileCredentials{%s}", t->path);
  return gpr_strdup(msg);
}

static void destroy(void *state) {
  token_file_t *t = state;
  pthread_mutex_destroy(&t->mu);
  trb_free(t->header);
  trb_free(t->path);
  trb_free(t);
}

grpc_status_code trb_rpc_token_file_creds(const char *path,
                                          grpc_call_credentials **out,
                                          trb_status_t *st) {
  *out = NULL;
  token_file_t *t = trb_calloc(1, sizeof(*t));
  if (t == NULL || (t->path = trb_strdup(path)) == NULL) {
    trb_free(t);
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                          "access token file: out of memory");
  }
  pthread_mutex_init(&t->mu, NULL);
  char err[160];
  refresh_locked(t, err, sizeof(err));
  if (t->header == NULL) {
    grpc_status_code code = trb_status_set(
        st, GRPC_STATUS_UNAUTHENTICATED, "access token file %s: %s", path,
        err);
    destroy(t);
    return code;
  }
  grpc_metadata_credentials_plugin plugin;
  memset(&plugin, 0, sizeof(plugin));
  plugin.get_metadata = get_metadata;
  plugin.debug_string = debug_string;
  plugin.destroy = destroy;
  plugin.state = t;
  plugin.type = "tributary_token_file";
  /* Tokens only ever travel over TLS. */
  *out = grpc_metadata_credentials_create_from_plugin(
      plugin, GRPC_PRIVACY_AND_INTEGRITY, NULL);
  if (*out == NULL) {
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                          "access token file: credentials not created");
  }
  return GRPC_STATUS_OK;
}
