// corpus.h — the shared research corpus (../shared/corpus next to the
// checkout), read in place at test time; never copied into the repo.
// $TRIBUTARY_SHARED (set by bazel/test.sh) names the shared directory.
#ifndef TRB_TESTS_INGEST_CORPUS_H
#define TRB_TESTS_INGEST_CORPUS_H

#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace trb_test {

// The corpus directory: $TRIBUTARY_SHARED/corpus, else
// <checkout>/../shared/corpus, where <checkout> is found through this
// header's runfiles symlink (plain `bazel test` without the variable).
inline std::string CorpusDir() {
  const char* env = getenv("TRIBUTARY_SHARED");
  if (env && *env) return std::string(env) + "/corpus";
  char real[PATH_MAX];
  if (!realpath("tests/ingest/corpus.h", real)) return "";
  std::string p = real;  // <checkout>/tests/ingest/corpus.h
  for (int i = 0; i < 3; i++) p = p.substr(0, p.rfind('/'));
  return p + "/../shared/corpus";
}

inline bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::stringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return true;
}

// Every regular file under `dir` (recursive) whose name ends in `suffix`,
// sorted.
inline void ListFiles(const std::string& dir, const std::string& suffix,
                      std::vector<std::string>* out) {
  DIR* d = opendir(dir.c_str());
  if (!d) return;
  while (struct dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string p = dir + "/" + name;
    struct stat st;
    if (stat(p.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      ListFiles(p, suffix, out);
    } else if (name.size() >= suffix.size() &&
               name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      out->push_back(p);
    }
  }
  closedir(d);
  std::sort(out->begin(), out->end());
}

}  // namespace trb_test

#endif  // TRB_TESTS_INGEST_CORPUS_H
