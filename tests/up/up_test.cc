// up_test — `tributary up` (the real binary, as a child process) on 2,000
// generated events plus the shared corpus: exit 0, a summary that adds up
// (rows + dead letters = accepted), the rows in the tables through
// `tributary sql`, no child process left behind; a second run on the same
// data directory continues with what is there; Ctrl-C stops everything.
#include <gtest/gtest.h>

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

std::string SharedDir() {
  const char* e = getenv("TRIBUTARY_SHARED");
  return e && *e ? e : "/work/shared";
}

std::vector<std::string> CorpusFiles() {
  std::string dir = SharedDir() + "/corpus/backend_events/";
  return {dir + "Jvmd95__re-partners-test.jsonl", dir + "mhassan01__gcp-realtime-data-pipeline.jsonl",
          dir + "nieweglp__gymshark-task.jsonl", dir + "paulobevilaqua__re-case.jsonl",
          dir + "MANIFEST.jsonl" /* skipped by up */};
}

size_t CorpusLines() {
  size_t n = 0;
  for (auto& f : CorpusFiles()) {
    if (f.find("MANIFEST") != std::string::npos) continue;
    std::ifstream in(f);
    std::string line;
    while (std::getline(in, line))
      if (line.find_first_not_of(" \t\r") != std::string::npos) n++;
  }
  return n;
}

std::string ReadFile(const std::string& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string TmpDir() {
  const char* t = getenv("TEST_TMPDIR");
  std::string base = t && *t ? t : "/tmp";
  char tmpl[4096];
  snprintf(tmpl, sizeof tmpl, "%s/up_XXXXXX", base.c_str());
  return mkdtemp(tmpl);
}

struct Child {
  pid_t pid = -1;
  std::string out_path;
  int status = -1;

  void Start(const std::vector<std::string>& args, const std::string& out) {
    out_path = out;
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>("src/cli/tributary"));
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      FILE* f = fopen(out.c_str(), "w");
      if (!f) _exit(125);
      dup2(fileno(f), 1);
      dup2(fileno(f), 2);
      execv(argv[0], argv.data());
      _exit(127);
    }
  }
  // Wait for exit up to `ms`; false at the deadline.
  bool Wait(int ms) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < deadline) {
      int st = 0;
      if (waitpid(pid, &st, WNOHANG) == pid) {
        status = st;
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // poll interval
    }
    return false;
  }
  // Wait until the output contains `s`, up to `ms`.
  bool WaitOutput(const std::string& s, int ms) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < deadline) {
      if (ReadFile(out_path).find(s) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // poll interval
    }
    return false;
  }
  ~Child() {
    if (pid > 0 && status == -1) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
};

// Processes whose command line mentions `needle` (the data directory).
std::vector<std::string> ProcessesWith(const std::string& needle) {
  std::vector<std::string> out;
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::string cmd = ReadFile(std::string("/proc/") + e->d_name + "/cmdline");
    for (auto& c : cmd)
      if (c == '\0') c = ' ';
    if (cmd.find(needle) != std::string::npos) out.push_back(std::string(e->d_name) + ": " + cmd);
  }
  closedir(d);
  return out;
}

// Live child processes of `parent` (a zombie has an empty command line).
std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::string stat = ReadFile(std::string("/proc/") + e->d_name + "/stat");
    size_t rp = stat.rfind(')');
    if (rp == std::string::npos) continue;
    int ppid = 0;
    char state = 0;
    if (sscanf(stat.c_str() + rp + 1, " %c %d", &state, &ppid) != 2) continue;
    if (ppid == parent && state != 'Z') out.push_back(atoi(e->d_name));
  }
  closedir(d);
  return out;
}

// Those of `pids` still running (not exited, not zombies).
std::vector<pid_t> StillRunning(const std::vector<pid_t>& pids) {
  std::vector<pid_t> out;
  for (pid_t p : pids)
    if (!ReadFile("/proc/" + std::to_string(p) + "/cmdline").empty()) out.push_back(p);
  return out;
}

// A number from a summary line "<label>   12,345 ...".
long long Num(const std::string& out, const std::string& label) {
  size_t p = 0;
  while ((p = out.find(label, p)) != std::string::npos) {
    size_t bol = out.rfind('\n', p);
    bool line_start = out.find_first_not_of(' ', bol == std::string::npos ? 0 : bol + 1) == p;
    size_t q = p + label.size();
    p = q;
    if (!line_start || q >= out.size() || out[q] != ' ') continue;
    while (q < out.size() && out[q] == ' ') q++;
    std::string digits;
    while (q < out.size() && (isdigit((unsigned char)out[q]) || out[q] == ',')) {
      if (out[q] != ',') digits += out[q];
      q++;
    }
    if (!digits.empty()) return std::stoll(digits);
  }
  return -1;
}

long long SqlCount(const std::string& dir, const std::string& table) {
  std::string out = dir + "/sql.out";
  Child c;
  c.Start({"sql", "--data-dir", dir, "--json", "SELECT COUNT(*) AS n FROM " + table}, out);
  if (!c.Wait(30000) || !WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0) return -1;
  std::string s = ReadFile(out);
  size_t p = s.find("\"n\":");
  return p == std::string::npos ? -1 : std::stoll(s.substr(p + 4));
}

const char* kTables[] = {"backend_events.order_events", "backend_events.inventory_events",
                         "backend_events.user_activity_events", "tributary.issues",
                         "tributary.raw_orders"};

TEST(UpTest, TwoThousandEventsPlusCorpusAddUpAndLandInTheTables) {
  size_t corpus = CorpusLines();
  ASSERT_GE(corpus, 30u) << "corpus not found under " << SharedDir() << " (set TRIBUTARY_SHARED)";
  std::string dir = TmpDir() + "/data";
  std::vector<std::string> args = {"up", "--events", "2000", "--data-dir", dir, "--corpus"};
  for (auto& f : CorpusFiles()) args.push_back(f);
  Child up;
  up.Start(args, TmpDir() + "/up.out");
  ASSERT_TRUE(up.Wait(240000)) << ReadFile(up.out_path);
  std::string out = ReadFile(up.out_path);
  ASSERT_TRUE(WIFEXITED(up.status)) << out;
  ASSERT_EQ(WEXITSTATUS(up.status), 0) << out;
  EXPECT_NE(out.find("skipping"), std::string::npos) << "MANIFEST.jsonl is not events";

  long long sent = Num(out, "events sent"), refused = Num(out, "refused by ingest"),
            accepted = Num(out, "accepted"), rows = Num(out, "rows written"),
            dead = Num(out, "dead letters");
  EXPECT_EQ(sent, 2000 + (long long)corpus) << out;
  EXPECT_GT(refused, 0) << "broken JSON is refused by ingest";
  EXPECT_EQ(refused + accepted, sent) << out;
  EXPECT_GT(dead, 0) << out;
  EXPECT_EQ(rows + dead, accepted) << out;
  EXPECT_NE(out.find("= accepted"), std::string::npos) << out;
  EXPECT_NE(out.find("  OK"), std::string::npos) << out;
  EXPECT_NE(out.find("sql --data-dir " + dir), std::string::npos) << out;
  EXPECT_NE(out.find("p99"), std::string::npos) << out;
  // Every stage the generator and the corpus exercise.
  EXPECT_NE(out.find("  route "), std::string::npos) << out;
  EXPECT_NE(out.find("  transcode backend_events.order_events"), std::string::npos) << out;
  // Every dead letter read back from the dead-letter topic, with reasons.
  size_t rb = out.find("read back from the dead-letter topic: ");
  EXPECT_NE(rb, std::string::npos) << out;
  if (rb != std::string::npos) {
    std::string tail = out.substr(rb + strlen("read back from the dead-letter topic: "));
    size_t of = tail.find(" of ");
    ASSERT_NE(of, std::string::npos);
    EXPECT_EQ(tail.substr(0, of), tail.substr(of + 4, tail.find(';') - of - 4)) << out;
  }
  EXPECT_NE(out.find("missing REQUIRED field"), std::string::npos) << out;
  EXPECT_NE(out.find("no route matches $.event_type"), std::string::npos) << out;

  long long in_tables = 0;
  std::map<std::string, long long> first;
  for (const char* t : kTables) {
    long long n = SqlCount(dir, t);
    EXPECT_GT(n, 0) << t;
    first[t] = n;
    in_tables += n;
  }
  EXPECT_EQ(in_tables, rows) << out;
  EXPECT_TRUE(ProcessesWith(dir).empty()) << ProcessesWith(dir)[0];

  // Again on the same directory: the tables keep the first run's rows.
  Child again;
  again.Start({"up", "--events", "500", "--seed", "2", "--data-dir", dir}, TmpDir() + "/up2.out");
  ASSERT_TRUE(again.Wait(240000)) << ReadFile(again.out_path);
  std::string out2 = ReadFile(again.out_path);
  ASSERT_TRUE(WIFEXITED(again.status) && WEXITSTATUS(again.status) == 0) << out2;
  long long rows2 = Num(out2, "rows written"), total2 = 0;
  EXPECT_EQ(Num(out2, "events sent"), 500) << out2;
  // Without the corpus every malformed event is the generator's: each is
  // stopped where it must be.
  EXPECT_EQ(Num(out2, "refused by ingest"), Num(out2, "broken_json")) << out2;
  EXPECT_EQ(Num(out2, "route     -"), Num(out2, "unknown_event_type")) << out2;
  EXPECT_GT(Num(out2, "wrong_type"), 0) << out2;
  EXPECT_GT(Num(out2, "missing_required"), 0) << out2;
  EXPECT_EQ(rows2 + Num(out2, "dead letters"), Num(out2, "accepted")) << out2;
  for (const char* t : kTables) {
    long long n = SqlCount(dir, t);
    EXPECT_GE(n, first[t]) << t;
    total2 += n;
  }
  EXPECT_EQ(total2, in_tables + rows2);
  EXPECT_TRUE(ProcessesWith(dir).empty());
}

TEST(GenTest, SameSeedSameOutputOnStdout) {
  std::string dir = TmpDir();
  Child a, b, c;
  a.Start({"gen", "--target", "stdout", "--events", "300", "--seed", "5", "--start", "1736899200"},
          dir + "/a.out");
  b.Start({"gen", "--target", "stdout", "--events", "300", "--seed", "5", "--start", "1736899200"},
          dir + "/b.out");
  c.Start({"gen", "--target", "stdout", "--events", "300", "--seed", "6", "--start", "1736899200"},
          dir + "/c.out");
  ASSERT_TRUE(a.Wait(30000) && b.Wait(30000) && c.Wait(30000));
  EXPECT_EQ(WEXITSTATUS(a.status), 0);
  // The events, without gen's closing report (stderr, same file here).
  auto events = [](const std::string& path) {
    std::string all = ReadFile(path), out;
    std::istringstream in(all);
    for (std::string line; std::getline(in, line);)
      if (line.rfind("tributary gen:", 0) != 0) out += line + "\n";
    return out;
  };
  std::string sa = events(a.out_path), sb = events(b.out_path), sc = events(c.out_path);
  EXPECT_EQ(std::count(sa.begin(), sa.end(), '\n'), 300);
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sa, sc);
  EXPECT_NE(sa.find("\"order_date\": \"2025-01-15"), std::string::npos);
}

TEST(GenTest, PublishesToPubSubDirectly) {
  std::string dir = TmpDir();
  Child emu;
  emu.Start({"emulator", "--pubsub-port", "0", "--bigquery-port", "0", "--data-dir", dir + "/emu",
             "--tables", "examples/tables", "--config", "examples/emulator.json"},
            dir + "/emu.out");
  ASSERT_TRUE(emu.WaitOutput("PUBSUB_EMULATOR_HOST=", 60000)) << ReadFile(emu.out_path);
  std::string o = ReadFile(emu.out_path);
  size_t p = o.find("PUBSUB_EMULATOR_HOST=");
  std::string host = o.substr(p + 21, o.find('\n', p) - p - 21);
  setenv("PUBSUB_EMULATOR_HOST", host.c_str(), 1);
  Child gen;
  gen.Start({"gen", "--target", "pubsub", "--events", "500", "--malformed", "0.2"}, dir + "/gen.out");
  bool done = gen.Wait(60000);
  unsetenv("PUBSUB_EMULATOR_HOST");
  ASSERT_TRUE(done);
  std::string g = ReadFile(gen.out_path);
  EXPECT_EQ(WEXITSTATUS(gen.status), 0) << g;
  // Every event, malformed ones included, has a Pub/Sub message id.
  EXPECT_NE(g.find("500 events"), std::string::npos) << g;
  EXPECT_NE(g.find(": 500 accepted, 0 refused (4xx), 0 failed"), std::string::npos) << g;
  kill(emu.pid, SIGTERM);
  ASSERT_TRUE(emu.Wait(30000));
}

TEST(UpTest, CtrlCStopsEveryChild) {
  std::string dir = TmpDir() + "/data";
  Child up;
  up.Start({"up", "--events", "10000000", "--rate", "2000", "--data-dir", dir},
           TmpDir() + "/up.out");
  ASSERT_TRUE(up.WaitOutput("streamers on ports", 120000)) << ReadFile(up.out_path);
  std::vector<pid_t> kids = ChildrenOf(up.pid);
  ASSERT_EQ(kids.size(), 5u) << "emulator, ingest, three streamers";
  ASSERT_TRUE(up.WaitOutput("sent ", 60000)) << ReadFile(up.out_path);  // a progress line
  kill(up.pid, SIGINT);
  ASSERT_TRUE(up.Wait(60000)) << ReadFile(up.out_path);
  std::string out = ReadFile(up.out_path);
  ASSERT_TRUE(WIFEXITED(up.status)) << out;
  EXPECT_EQ(WEXITSTATUS(up.status), 130) << out;
  EXPECT_NE(out.find("interrupted"), std::string::npos) << out;
  EXPECT_TRUE(StillRunning(kids).empty());
  EXPECT_TRUE(ProcessesWith(dir).empty()) << ProcessesWith(dir)[0];
}

TEST(UpTest, ChildrenDieWithAKilledUp) {
  std::string dir = TmpDir() + "/data";
  Child up;
  up.Start({"up", "--events", "10000000", "--rate", "2000", "--data-dir", dir},
           TmpDir() + "/up.out");
  ASSERT_TRUE(up.WaitOutput("streamers on ports", 120000)) << ReadFile(up.out_path);
  std::vector<pid_t> kids = ChildrenOf(up.pid);
  ASSERT_EQ(kids.size(), 5u) << "emulator, ingest, three streamers";
  kill(up.pid, SIGKILL);
  ASSERT_TRUE(up.Wait(10000));
  // PR_SET_PDEATHSIG: ingest and the streamers get SIGKILL, the emulator
  // SIGTERM (it stops cleanly, within its own shutdown time).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!StillRunning(kids).empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // poll interval
  EXPECT_TRUE(StillRunning(kids).empty());
}

}  // namespace
