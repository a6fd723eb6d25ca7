/*
 * bench_emu.c — see bench_emu.h.
 */
#include "perf/bench_emu.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

void trb_bench_die(const char *what) {
  fprintf(stderr, "bench: %s\n", what);
  exit(1);
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f) trb_bench_die(path);
  fputs(text, f);
  fclose(f);
}

void trb_bench_emu_start(const char *bin, const char *config_json,
                         const char *const *tables, bool durable,
                         trb_bench_emu_t *e) {
  snprintf(e->dir, sizeof(e->dir), "/tmp/trb-bench-XXXXXX");
  if (!mkdtemp(e->dir)) trb_bench_die("mkdtemp");
  char config[300], tdir[300], data[300];
  snprintf(config, sizeof(config), "%s/emulator.json", e->dir);
  snprintf(tdir, sizeof(tdir), "%s/tables", e->dir);
  snprintf(data, sizeof(data), "%s/data", e->dir);
  if (config_json) write_file(config, config_json);
  if (tables) {
    mkdir(tdir, 0755);
    for (int i = 0; tables[i] && tables[i + 1]; i += 2) {
      char path[600];
      snprintf(path, sizeof(path), "%s/%s", tdir, tables[i]);
      write_file(path, tables[i + 1]);
    }
  }
  const char *argv[16];
  int n = 0;
  argv[n++] = bin;
  argv[n++] = "emulator";
  argv[n++] = "--pubsub-port";
  argv[n++] = "0";
  argv[n++] = "--bigquery-port";
  argv[n++] = "0";
  if (config_json) {
    argv[n++] = "--config";
    argv[n++] = config;
  }
  if (tables) {
    argv[n++] = "--tables";
    argv[n++] = tdir;
  }
  if (durable) {
    argv[n++] = "--data-dir";
    argv[n++] = data;
  }
  argv[n] = NULL;

  int out[2];
  if (pipe(out) != 0) trb_bench_die("pipe");
  e->pid = fork();
  if (e->pid < 0) trb_bench_die("fork");
  if (e->pid == 0) {
    /* A bench that dies (trb_bench_die) takes its emulator with it. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1) _exit(127);
    dup2(out[1], 1);
    close(out[0]);
    execv(bin, (char *const *)argv);
    _exit(127);
  }
  close(out[1]);
  FILE *in = fdopen(out[0], "r");
  char line[256];
  e->pubsub[0] = e->bigquery[0] = '\0';
  while ((!e->pubsub[0] || !e->bigquery[0]) && fgets(line, sizeof(line), in)) {
    line[strcspn(line, "\n")] = '\0';
    if (strncmp(line, "PUBSUB_EMULATOR_HOST=", 21) == 0)
      snprintf(e->pubsub, sizeof(e->pubsub), "%s", line + 21);
    if (strncmp(line, "BIGQUERY_STORAGE_EMULATOR_HOST=", 31) == 0)
      snprintf(e->bigquery, sizeof(e->bigquery), "%s", line + 31);
  }
  fclose(in);
  if (!e->pubsub[0] || !e->bigquery[0]) trb_bench_die("emulator did not start");
}

void trb_bench_emu_stop(trb_bench_emu_t *e) {
  kill(e->pid, SIGTERM);
  int status;
  waitpid(e->pid, &status, 0);
  char cmd[300];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
  if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", e->dir);
}

double trb_bench_proc_cpu_s(pid_t pid) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char buf[1024];
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  unsigned long ut = 0, stt = 0;
  if (p) sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &stt);
  return (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
}

double trb_bench_rusage_s(int who) {
  struct rusage ru;
  getrusage(who, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double trb_bench_median(double *v, int n) {
  qsort(v, (size_t)n, sizeof(double), cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void trb_bench_run_last_line(const char *cmd, char *out, size_t len) {
  FILE *p = popen(cmd, "r");
  if (!p) trb_bench_die("popen");
  char line[256];
  out[0] = '\0';
  while (fgets(line, sizeof(line), p)) snprintf(out, len, "%s", line);
  int rc = pclose(p);
  if (rc != 0) {
    fprintf(stderr, "bench: `%s` failed (%d): %s\n", cmd, rc, out);
    exit(1);
  }
}

void trb_bench_corpus_lines(const char *dir,
                            void (*cb)(void *user, char *line, size_t len),
                            void *user) {
  DIR *d = opendir(dir);
  if (!d) trb_bench_die(dir);
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t nl = strlen(e->d_name);
    if (nl < 6 || strcmp(e->d_name + nl - 6, ".jsonl") != 0 ||
        strcmp(e->d_name, "MANIFEST.jsonl") == 0)
      continue;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t n;
    while ((n = getline(&line, &lcap, f)) > 0) {
      while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
      cb(user, line, (size_t)n);
    }
    free(line);
    fclose(f);
  }
  closedir(d);
}
