/*
 * child.c — see child.h.
 */
#include "src/up/child.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "src/common/clock.h"

int trb_up_child_start(trb_up_child_t *c, const char *name,
                       const char *log_path, char *const argv[],
                       char *const env[], pid_t pgid, int death_signal) {
  memset(c, 0, sizeof(*c));
  snprintf(c->name, sizeof c->name, "%s", name);
  snprintf(c->log_path, sizeof c->log_path, "%s", log_path);
  int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return -errno;
  c->log_start = (long)lseek(fd, 0, SEEK_END);
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_t parent = getpid();
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    int e = -errno;
    close(fd);
    if (devnull >= 0) close(devnull);
    return e;
  }
  if (pid == 0) {
    /* Child: only async-signal-safe calls until exec (setenv is not, but
     * the parent forks from its only forking thread and no lock of ours is
     * held; glibc's environment lock is released at fork). */
    setpgid(0, pgid);
    prctl(PR_SET_PDEATHSIG, death_signal);
    if (getppid() != parent) _exit(126);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    for (int i = 0; env && env[i]; i++) putenv(env[i]);
    execv(argv[0], argv);
    _exit(127);
  }
  setpgid(pid, pgid ? pgid : pid);
  close(fd);
  if (devnull >= 0) close(devnull);
  c->pid = pid;
  return 0;
}

bool trb_up_child_alive(trb_up_child_t *c) {
  if (c->pid <= 0 || c->reaped) return false;
  int status = 0;
  pid_t r = waitpid(c->pid, &status, WNOHANG);
  if (r == c->pid) {
    c->reaped = true;
    c->exit_status = status;
    return false;
  }
  return true;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

int trb_up_child_wait_line(trb_up_child_t *c, const char *prefix, char *out,
                           size_t cap, int timeout_ms) {
  int64_t deadline = trb_clock_mono_ms() + timeout_ms;
  size_t pl = strlen(prefix);
  for (;;) {
    FILE *f = fopen(c->log_path, "r");
    if (f && fseek(f, c->log_start, SEEK_SET) != 0) {
      fclose(f);
      f = NULL;
    }
    if (f) {
      char line[8192];
      while (fgets(line, sizeof line, f)) {
        if (strncmp(line, prefix, pl) == 0) {
          size_t n = strcspn(line + pl, "\r\n");
          if (n >= cap) n = cap ? cap - 1 : 0;
          if (cap) {
            memcpy(out, line + pl, n);
            out[n] = '\0';
          }
          fclose(f);
          return 0;
        }
      }
      fclose(f);
    }
    if (!trb_up_child_alive(c)) return -ECHILD;
    if (trb_clock_mono_ms() >= deadline) return -ETIMEDOUT;
    sleep_ms(20);
  }
}

int trb_up_child_stop(trb_up_child_t *c, int grace_ms) {
  if (c->pid <= 0) return 0;
  if (!c->reaped) {
    kill(c->pid, SIGTERM);
    int64_t deadline = trb_clock_mono_ms() + grace_ms;
    while (trb_up_child_alive(c) && trb_clock_mono_ms() < deadline)
      sleep_ms(10);
    if (!c->reaped) {
      kill(c->pid, SIGKILL);
      int status = 0;
      if (waitpid(c->pid, &status, 0) == c->pid) {
        c->reaped = true;
        c->exit_status = status;
      }
    }
  }
  return c->exit_status;
}

void trb_up_child_print_tail(const trb_up_child_t *c, int max_lines,
                             void *out_file) {
  FILE *out = out_file;
  FILE *f = fopen(c->log_path, "r");
  if (!f) return;
  char ring[16][1024];
  int n = 0;
  if (max_lines > 16) max_lines = 16;
  while (fgets(ring[n % max_lines], sizeof ring[0], f)) n++;
  fclose(f);
  int start = n > max_lines ? n - max_lines : 0;
  for (int i = start; i < n; i++) fprintf(out, "  %s: %s", c->name, ring[i % max_lines]);
}
