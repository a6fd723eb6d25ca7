// stream_child.h — `src/cli/tributary stream` (the real binary) run as a
// child process against a StreamEnv's emulator: the child's environment
// (this process's, with the emulator hosts pointed at the fixture) and a
// handle to start, SIGKILL, SIGTERM and reap it. Test-only; not thread-safe
// (one thread drives a StreamChild).
#ifndef TRB_TESTS_STREAMER_STREAM_CHILD_H
#define TRB_TESTS_STREAMER_STREAM_CHILD_H

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "tests/streamer/stream_fixture.h"

extern char** environ;

namespace st_test {

// This process's environment minus any PUBSUB_EMULATOR_HOST /
// BIGQUERY_STORAGE_EMULATOR_HOST, plus those two set to `env`'s emulator
// targets, then `extra` ("NAME=value" each, appended in order).
inline std::vector<std::string> ChildEnv(const StreamEnv& env,
                                         const std::vector<std::string>& extra) {
  std::vector<std::string> envs;
  for (char** e = environ; *e; e++)
    if (strncmp(*e, "PUBSUB_EMULATOR_HOST=", 21) && strncmp(*e, "BIGQUERY_STORAGE_EMULATOR_HOST=", 31))
      envs.push_back(*e);
  envs.push_back("PUBSUB_EMULATOR_HOST=" + env.ps_target);
  envs.push_back("BIGQUERY_STORAGE_EMULATOR_HOST=" + env.bq_target);
  for (const auto& x : extra) envs.push_back(x);
  return envs;
}

// In the child only (after fork): execve `argv` (null-terminated; argv[0]
// the binary's path relative to the runfiles root) with `envs`; never
// returns (_exit(127) when execve fails).
[[noreturn]] inline void ExecChild(std::vector<char*> argv, std::vector<std::string> envs) {
  std::vector<char*> ev;
  for (auto& e : envs) ev.push_back(&e[0]);
  ev.push_back(nullptr);
  execve(argv[0], argv.data(), ev.data());
  _exit(127);
}

// `tributary stream --pipeline <file>` as a child, time scaled to 50 ms a
// "second" (TRIBUTARY_TEST_MS_PER_SECOND=50), log level warning, stdout and
// stderr appended to a log file. Killed with SIGKILL on destruction if
// still running.
class StreamChild {
 public:
  pid_t pid = -1;  // -1 when not running (or already reaped)

  // Forks and execs the binary on `pipeline` (path to the pipeline JSON)
  // against `env`'s emulator, output appended to `log` (created 0644).
  // False when fork fails.
  bool Start(const std::string& pipeline, const StreamEnv& env, const std::string& log) {
    std::vector<std::string> envs =
        ChildEnv(env, {"TRIBUTARY_TEST_MS_PER_SECOND=50", "TRB_LOG_LEVEL=warning"});
    pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      ExecChild({(char*)"src/cli/tributary", (char*)"stream", (char*)"--pipeline",
                 (char*)pipeline.c_str(), nullptr},
                std::move(envs));
    }
    return true;
  }
  // SIGKILL and reap; no-op when not running.
  void Kill() {
    if (pid <= 0) return;
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    pid = -1;
  }
  // SIGTERM and wait for exit. Returns the exit code, 128 + signal number
  // when killed by a signal, -1 when not running.
  int Term() {
    if (pid <= 0) return -1;
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  // True (and reaped) when the child has exited or is not running; does
  // not block.
  bool Exited() {
    if (pid <= 0) return true;
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      pid = -1;
      return true;
    }
    return false;
  }
  ~StreamChild() { Kill(); }
};

}  // namespace st_test

#endif  // TRB_TESTS_STREAMER_STREAM_CHILD_H
