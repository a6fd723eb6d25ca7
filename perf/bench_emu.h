/*
 * bench_emu.h — shared pieces of the perf/ benchmarks that drive a
 * `tributary emulator` child process: start/stop on free ports, CPU time of
 * a process, medians.
 */
#ifndef TRB_PERF_BENCH_EMU_H
#define TRB_PERF_BENCH_EMU_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/** A running emulator child. */
typedef struct trb_bench_emu_s {
  pid_t pid;
  /** Temporary directory (config, tables, data); removed by stop. */
  char dir[256];
  /** host:port of each service, as the emulator printed them. */
  char pubsub[64];
  char bigquery[64];
} trb_bench_emu_t;

/**
 * Start `bin emulator --pubsub-port 0 --bigquery-port 0` in a fresh
 * temporary directory. `config_json` (may be NULL) becomes its --config;
 * `tables` (may be NULL) is a NULL-terminated list of file name / JSON
 * pairs written to its --tables directory; `durable` adds --data-dir.
 * Returns once both address lines were read. Exits the process on failure.
 */
void trb_bench_emu_start(const char *bin, const char *config_json,
                         const char *const *tables, bool durable,
                         trb_bench_emu_t *e);

/** SIGTERM, wait, remove the directory. */
void trb_bench_emu_stop(trb_bench_emu_t *e);

/** CPU seconds (user + system) used so far by process `pid` (/proc). */
double trb_bench_proc_cpu_s(pid_t pid);

/** CPU seconds of RUSAGE_SELF or RUSAGE_CHILDREN (getrusage). */
double trb_bench_rusage_s(int who);

/** Median of v[0..n) (sorts v in place). */
double trb_bench_median(double *v, int n);

/**
 * Run the shell command `cmd` (e.g. a Node.js baseline script) and copy the
 * last line it printed on stdout into out[0..len). Exits the process when
 * the command cannot start or exits non-zero.
 */
void trb_bench_run_last_line(const char *cmd, char *out, size_t len);

/** Print "bench: <what>" to stderr and exit(1). */
void trb_bench_die(const char *what) __attribute__((noreturn));

/**
 * Walk a corpus directory: every line of every `*.jsonl` file except
 * MANIFEST.jsonl, with its trailing newline removed, goes to `cb` (`line`
 * is writable and valid only during the call; `len` bytes, NUL-terminated).
 * Dies (trb_bench_die) when `dir` cannot be opened.
 */
void trb_bench_corpus_lines(const char *dir,
                            void (*cb)(void *user, char *line, size_t len),
                            void *user);

#endif /* TRB_PERF_BENCH_EMU_H */
