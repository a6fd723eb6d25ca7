/*
 * channel.c — channels and credentials (see rpc.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

#include "src/common/alloc.h"
#include "src/rpc/rpc_internal.h"

#define DEFAULT_MAX_MESSAGE_BYTES (64 * 1024 * 1024)

static grpc_status_code make_creds(const trb_rpc_channel_config_t *cfg,
                                   grpc_channel_credentials **out,
                                   trb_status_t *st) {
  grpc_channel_credentials *ssl;
  grpc_call_credentials *token;

  *out = NULL;
  switch (cfg->creds) {
    case TRB_RPC_CREDS_INSECURE:
      if (cfg->root_certs_pem || cfg->bearer_token || cfg->tls_server_name ||
          cfg->bearer_token_file) {
        return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                              "channel %s: TLS settings given for an "
                              "insecure channel",
                              cfg->target);
      }
      *out = grpc_insecure_credentials_create();
      return GRPC_STATUS_OK;
    case TRB_RPC_CREDS_GOOGLE_DEFAULT:
      *out = grpc_google_default_credentials_create(NULL);
      if (*out == NULL) {
        return trb_status_set(
            st, GRPC_STATUS_UNAUTHENTICATED,
            "channel %s: no Google Application Default Credentials "
            "(set GOOGLE_APPLICATION_CREDENTIALS, run `gcloud auth "
            "application-default login`, or run on Google Cloud)",
            cfg->target);
      }
      return GRPC_STATUS_OK;
    case TRB_RPC_CREDS_TLS:
      if (cfg->bearer_token != NULL && cfg->bearer_token_file != NULL) {
        return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                              "channel %s: both bearer_token and "
                              "bearer_token_file given",
                              cfg->target);
      }
      token = NULL;
      if (cfg->bearer_token_file != NULL) {
        grpc_status_code code =
            trb_rpc_token_file_creds(cfg->bearer_token_file, &token, st);
        if (code != GRPC_STATUS_OK) {
          trb_status_prefix(st, "channel %s", cfg->target);
          return code;
        }
      }
      ssl = grpc_ssl_credentials_create(cfg->root_certs_pem, NULL, NULL, NULL);
      if (ssl == NULL) {
        if (token) grpc_call_credentials_release(token);
        return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                              "channel %s: TLS credentials rejected",
                              cfg->target);
      }
      if (cfg->bearer_token == NULL && token == NULL) {
        *out = ssl;
        return GRPC_STATUS_OK;
      }
      if (token == NULL) {
        token = grpc_access_token_credentials_create(cfg->bearer_token, NULL);
      }
      *out = grpc_composite_channel_credentials_create(ssl, token, NULL);
      grpc_channel_credentials_release(ssl);
      grpc_call_credentials_release(token);
      return GRPC_STATUS_OK;
    default:
      return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                            "channel %s: unknown credentials kind %d",
                            cfg->target, (int)cfg->creds);
  }
}

grpc_status_code trb_rpc_channel_create(const trb_rpc_channel_config_t *cfg,
                                        trb_rpc_channel_t **out,
                                        trb_status_t *st) {
  grpc_channel_credentials *creds;
  grpc_arg args[7];
  size_t n = 0;
  grpc_channel_args chargs;
  trb_rpc_channel_t *ch;
  grpc_status_code code;

  *out = NULL;
  if (cfg == NULL || cfg->target == NULL || cfg->target[0] == '\0') {
    return trb_status_set(st, GRPC_STATUS_INVALID_ARGUMENT,
                          "channel: target is required");
  }
  ch = trb_calloc(1, sizeof(*ch));
  if (ch == NULL) {
    return trb_status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED,
                          "channel: out of memory");
  }
  code = make_creds(cfg, &creds, st);
  if (code != GRPC_STATUS_OK) {
    trb_free(ch);
    return code;
  }

  args[n++] = trb_rpc_arg_int(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
                              cfg->max_receive_message_bytes
                                  ? cfg->max_receive_message_bytes
                                  : DEFAULT_MAX_MESSAGE_BYTES);
  args[n++] = trb_rpc_arg_int(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
                              cfg->max_send_message_bytes
                                  ? cfg->max_send_message_bytes
                                  : DEFAULT_MAX_MESSAGE_BYTES);
  args[n++] = trb_rpc_arg_int(GRPC_ARG_HTTP2_WRITE_BUFFER_SIZE,
                              cfg->write_buffer_bytes
                                  ? cfg->write_buffer_bytes
                                  : TRB_RPC_DEFAULT_WRITE_BUFFER_BYTES);
  args[n++] = trb_rpc_arg_str(GRPC_ARG_PRIMARY_USER_AGENT_STRING,
                              cfg->user_agent ? cfg->user_agent : "tributary");
  if (cfg->keepalive_time_ms > 0) {
    args[n++] = trb_rpc_arg_int(GRPC_ARG_KEEPALIVE_TIME_MS,
                                cfg->keepalive_time_ms);
    args[n++] = trb_rpc_arg_int(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  }
  if (cfg->tls_server_name) {
    args[n++] = trb_rpc_arg_str(GRPC_SSL_TARGET_NAME_OVERRIDE_ARG,
                                cfg->tls_server_name);
  }
  chargs.num_args = n;
  chargs.args = args;
  ch->channel = grpc_channel_create(cfg->target, creds, &chargs);
  grpc_channel_credentials_release(creds);
  *out = ch;
  return GRPC_STATUS_OK;
}

void trb_rpc_channel_destroy(trb_rpc_channel_t *ch) {
  if (ch == NULL) return;
  if (ch->channel) grpc_channel_destroy(ch->channel);
  trb_free(ch);
}

bool trb_rpc_channel_config_from_env(trb_rpc_channel_config_t *cfg,
                                     const char *default_target,
                                     const char *emulator_env) {
  const char *host = emulator_env ? getenv(emulator_env) : NULL;
  memset(cfg, 0, sizeof(*cfg));
  if (host != NULL && host[0] != '\0') {
    cfg->target = host;
    cfg->creds = TRB_RPC_CREDS_INSECURE;
    return true;
  }
  cfg->target = default_target;
  cfg->creds = TRB_RPC_CREDS_GOOGLE_DEFAULT;
  if (emulator_env != NULL) {
    static const char kSuffix[] = "_EMULATOR_HOST";
    size_t n = strlen(emulator_env);
    size_t k = sizeof(kSuffix) - 1;
    char name[128];
    if (n > k && strcmp(emulator_env + n - k, kSuffix) == 0 &&
        n - k + sizeof("TRIBUTARY__ENDPOINT") <= sizeof(name)) {
      snprintf(name, sizeof(name), "TRIBUTARY_%.*s_ENDPOINT", (int)(n - k),
               emulator_env);
      const char *ep = getenv(name);
      if (ep != NULL && ep[0] != '\0') cfg->target = ep;
    }
  }
  const char *tf = getenv("TRIBUTARY_ACCESS_TOKEN_FILE");
  if (tf != NULL && tf[0] != '\0') {
    cfg->creds = TRB_RPC_CREDS_TLS;
    cfg->bearer_token_file = tf;
  }
  return false;
}
