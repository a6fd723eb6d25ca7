/*
 * lsan_suppressions.c — LeakSanitizer's built-in suppressions for every
 * test binary (linked in by trb_cc_test, bazel/defs.bzl).
 *
 * CRYPTO_zalloc: OpenSSL's allocator. Tributary never calls OpenSSL itself
 * (TLS is gRPC's: src/rpc/channel.c, server.c), so every OpenSSL object is
 * gRPC's. Debian's libcrypto has no frame pointers, so such a leak's stack
 * ends at CRYPTO_zalloc and names no caller; one (904 bytes, a TLS test
 * exiting while gRPC's handshake threads still ran) was seen in about 1 of
 * 20 runs of tests/rpc:token_file_test. Leaks of Tributary's own
 * allocations (trb_malloc, malloc from our code) are still reported.
 */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
  return "leak:CRYPTO_zalloc\n";
}
