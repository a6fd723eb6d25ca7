// child.h — run `tributary emulator` as a child process on free ports (for
// kill -9 tests and CLI behaviour), with blocking helpers for its RPCs.
#ifndef TRB_TESTS_EMULATOR_CHILD_H
#define TRB_TESTS_EMULATOR_CHILD_H

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include "src/rpc/pb.h"
#include "src/rpc/rpc.h"

namespace trb_test {

// The tributary binary, a data dependency of the test (runfiles path).
inline std::string TributaryBin() { return "src/cli/tributary"; }

class EmulatorChild {
 public:
  // Starts the emulator with `args` appended to
  // `emulator --pubsub-port 0 --bigquery-port 0`; waits (30 s deadline)
  // for both address lines on stdout.
  bool Start(const std::vector<std::string>& args, std::string* err) {
    int out[2], errp[2];
    if (pipe(out) != 0 || pipe(errp) != 0) return Fail(err, "pipe");
    pid_ = fork();
    if (pid_ < 0) return Fail(err, "fork");
    if (pid_ == 0) {
      dup2(out[1], 1);
      dup2(errp[1], 2);
      close(out[0]);
      close(errp[0]);
      std::vector<std::string> all = {TributaryBin(), "emulator", "--pubsub-port", "0",
                                      "--bigquery-port", "0"};
      all.insert(all.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (auto& a : all) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(out[1]);
    close(errp[1]);
    out_fd_ = out[0];
    err_fd_ = errp[0];
    std::string buf;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (pubsub_.empty() || bigquery_.empty()) {
      int left = (int)std::chrono::duration_cast<std::chrono::milliseconds>(
                     deadline - std::chrono::steady_clock::now())
                     .count();
      if (left <= 0) return Fail(err, "no address lines within 30 s: " + Stderr());
      struct pollfd p = {out_fd_, POLLIN, 0};
      if (poll(&p, 1, left) <= 0) continue;
      char chunk[512];
      ssize_t n = read(out_fd_, chunk, sizeof(chunk));
      if (n <= 0) return Fail(err, "emulator exited: " + Stderr());
      buf.append(chunk, (size_t)n);
      size_t nl;
      while ((nl = buf.find('\n')) != std::string::npos) {
        std::string line = buf.substr(0, nl);
        buf.erase(0, nl + 1);
        const std::string a = "PUBSUB_EMULATOR_HOST=", b = "BIGQUERY_STORAGE_EMULATOR_HOST=";
        if (line.rfind(a, 0) == 0) pubsub_ = line.substr(a.size());
        if (line.rfind(b, 0) == 0) bigquery_ = line.substr(b.size());
      }
    }
    return true;
  }

  // Everything the child wrote to stderr so far (non-blocking).
  std::string Stderr() {
    std::string s;
    char chunk[4096];
    struct pollfd p = {err_fd_, POLLIN, 0};
    while (err_fd_ >= 0 && poll(&p, 1, 0) > 0) {
      ssize_t n = read(err_fd_, chunk, sizeof(chunk));
      if (n <= 0) break;
      s.append(chunk, (size_t)n);
    }
    return s;
  }

  // SIGKILL (kill -9) or SIGTERM; returns the wait status.
  int Stop(int sig) {
    if (pid_ <= 0) return -1;
    kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    if (out_fd_ >= 0) close(out_fd_);
    if (err_fd_ >= 0) close(err_fd_);
    out_fd_ = err_fd_ = -1;
    return status;
  }

  ~EmulatorChild() { Stop(SIGKILL); }

  const std::string& pubsub() const { return pubsub_; }
  const std::string& bigquery() const { return bigquery_; }

 private:
  static bool Fail(std::string* err, const std::string& what) {
    *err = what;
    return false;
  }
  pid_t pid_ = -1;
  int out_fd_ = -1, err_fd_ = -1;
  std::string pubsub_, bigquery_;
};

// A client loop + channel to one target.
class Client {
 public:
  explicit Client(const std::string& target) {
    trb_status_t st = {};
    EXPECT_EQ(GRPC_STATUS_OK, trb_rpc_loop_create("test", &loop_, &st)) << st.msg;
    trb_rpc_channel_config_t cc = {};
    cc.target = target.c_str();
    cc.creds = TRB_RPC_CREDS_INSECURE;
    EXPECT_EQ(GRPC_STATUS_OK, trb_rpc_channel_create(&cc, &ch_, &st)) << st.msg;
  }
  ~Client() {
    trb_rpc_loop_destroy(loop_);
    trb_rpc_channel_destroy(ch_);
  }
  // Encode `msg`, call `method` (10 s deadline), decode the response into
  // `out` (when OK and out_fields given). Zero-copy views in `out` (e.g.
  // PubsubMessage.data) point into a copy of the response kept until the
  // next Call. Returns the status code.
  grpc_status_code Call(const char* method, const pb_msgdesc_t* in_fields, const void* msg,
                        const pb_msgdesc_t* out_fields, void* out, std::string* message = nullptr) {
    uint8_t* buf = nullptr;
    size_t len = 0;
    trb_status_t st = {};
    if (trb_pb_encode(in_fields, msg, &buf, &len, &st) != GRPC_STATUS_OK) return st.code;
    trb_rpc_call_opts_t opts = {};
    opts.timeout_ms = 10000;
    trb_rpc_response_t r = {};
    grpc_status_code code = trb_rpc_unary_call(loop_, ch_, method, buf, len, &opts, &r);
    trb_pb_free(buf);
    if (message) *message = r.message ? r.message : "";
    if (code == GRPC_STATUS_OK && out_fields) {
      last_response_.assign(reinterpret_cast<const char*>(r.response), r.response_len);
      code = trb_pb_decode(out_fields, reinterpret_cast<const uint8_t*>(last_response_.data()),
                           last_response_.size(), out, &st);
    }
    trb_rpc_response_deinit(&r);
    return code;
  }
  trb_rpc_loop_t* loop() { return loop_; }
  trb_rpc_channel_t* channel() { return ch_; }

 private:
  trb_rpc_loop_t* loop_ = nullptr;
  trb_rpc_channel_t* ch_ = nullptr;
  std::string last_response_;
};

// `tributary sql --data-dir dir --json query` output lines.
inline std::vector<std::string> SqlJson(const std::string& dir, const std::string& query) {
  std::string cmd = TributaryBin() + " sql --json --data-dir '" + dir + "' \"" + query + "\"";
  std::vector<std::string> lines;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return lines;
  char line[4096];
  while (fgets(line, sizeof(line), p)) {
    std::string s(line);
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    if (!s.empty()) lines.push_back(s);
  }
  EXPECT_EQ(0, pclose(p)) << cmd;
  return lines;
}

inline std::string MakeTempDir() {
  char tmpl[] = "/tmp/trb_emu_test_XXXXXX";
  EXPECT_NE(nullptr, mkdtemp(tmpl));
  return tmpl;
}

inline void RemoveDir(const std::string& dir) {
  std::string cmd = "rm -rf '" + dir + "'";
  EXPECT_EQ(0, system(cmd.c_str()));
}

}  // namespace trb_test

#endif  // TRB_TESTS_EMULATOR_CHILD_H
