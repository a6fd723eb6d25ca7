/*
 * child.h — the child processes of `tributary up`: started from the main
 * thread with PR_SET_PDEATHSIG (they get SIGTERM when `up` dies, even by
 * SIGKILL) in one process group (so a last kill reaches every one), output
 * appended to a log file, readiness read from that log, stopped in order
 * with SIGTERM and a grace period, then SIGKILL.
 *
 * Threading: trb_up_child_start must be called from the thread that lives
 * as long as the children (the main thread): PR_SET_PDEATHSIG fires when
 * the forking *thread* exits. The rest: one thread at a time per child.
 */
#ifndef TRB_SRC_UP_CHILD_H
#define TRB_SRC_UP_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct trb_up_child_s {
  char name[64];
  char log_path[4096];
  pid_t pid;      /* 0 when not running */
  int exit_status; /* waitpid status once reaped */
  bool reaped;
  long log_start; /* log size when started: earlier runs' lines are skipped */
} trb_up_child_t;

/**
 * Fork and exec `argv[0]` with `argv` (NULL-terminated) and the current
 * environment plus `env` ("KEY=VALUE" strings, NULL-terminated; may be
 * NULL). stdin is /dev/null; stdout and stderr are appended to `log_path`.
 * Params:  pgid — process group to join; 0 = start a new one (its id is
 *          then the child's pid).
 *          death_signal — what the child gets when this process dies
 *          (PR_SET_PDEATHSIG): SIGKILL for children that must not outlive
 *          it by a grace period, SIGTERM for one that should stop cleanly
 *          (and whose shutdown cannot hang on a dead peer).
 * Returns: 0; -errno (the log cannot be opened, fork failed). An exec
 *          failure shows as the child exiting with status 127.
 */
int trb_up_child_start(trb_up_child_t *c, const char *name,
                       const char *log_path, char *const argv[],
                       char *const env[], pid_t pgid, int death_signal);

/** true while the child runs (reaps it when it has exited). */
bool trb_up_child_alive(trb_up_child_t *c);

/**
 * Wait until a line the child wrote to its log (this run's part) starts with `prefix`, copying the
 * rest of that line to `out` (`cap` bytes, NUL-terminated).
 * Params:  timeout_ms — deadline for the whole wait.
 * Returns: 0; -ETIMEDOUT; -ECHILD when the child exited first.
 */
int trb_up_child_wait_line(trb_up_child_t *c, const char *prefix, char *out,
                           size_t cap, int timeout_ms);

/**
 * SIGTERM, wait up to `grace_ms` for it to exit, then SIGKILL and reap.
 * No-op for a child not running. Returns the exit status as waitpid's.
 */
int trb_up_child_stop(trb_up_child_t *c, int grace_ms);

/** The last `max_lines` lines of the child's log to `out` (for errors). */
void trb_up_child_print_tail(const trb_up_child_t *c, int max_lines,
                             void *out_file);

#ifdef __cplusplus
}
#endif

#endif /* TRB_SRC_UP_CHILD_H */
