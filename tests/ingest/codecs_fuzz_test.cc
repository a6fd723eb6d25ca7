// codecs_fuzz_test.cc — deterministic mutation fuzzing of the pure ingest
// codecs: every corpus fixture (push, Firestore JSON and protobuf) with
// byte flips, truncations, duplications and insertions, through the JSON
// parser, the push decoder, the CloudEvent parser and the Firestore
// renderers. Each call must answer OK or INVALID_ARGUMENT; under ASan/UBSan
// (bazel/test.sh) any out-of-bounds access or leak fails the test.
#include <gtest/gtest.h>
#include <jansson.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "src/ingest/cloudevent.h"
#include "src/ingest/firestore.h"
#include "src/ingest/json_input.h"
#include "src/ingest/push.h"
#include "tests/ingest/corpus.h"

namespace {

std::string Mutate(const std::string& in, std::mt19937* rng) {
  std::string s = in;
  int edits = 1 + static_cast<int>((*rng)() % 4);
  for (int e = 0; e < edits && !s.empty(); e++) {
    size_t pos = (*rng)() % s.size();
    switch ((*rng)() % 5) {
      case 0: s[pos] = static_cast<char>((*rng)() & 0xff); break;  // flip
      case 1: s.resize(pos); break;                                  // truncate
      case 2: s.insert(pos, s.substr(pos, (*rng)() % 16)); break;    // duplicate
      case 3: s.insert(pos, 1, "{}[]\":,\\"[(*rng)() % 8]); break;   // syntax
      case 4: s.erase(pos, 1 + (*rng)() % 4); break;                 // delete
    }
  }
  return s;
}

size_t fast_accepted = 0;

bool Allowed(grpc_status_code c) {
  return c == GRPC_STATUS_OK || c == GRPC_STATUS_INVALID_ARGUMENT;
}

void Exercise(const std::string& body) {
  trb_status_t st = {};
  json_t* root = nullptr;
  grpc_status_code c = trb_ingest_json_parse(body.data(), body.size(), 0, &root, &st);
  ASSERT_TRUE(Allowed(c)) << st.msg;
  // The one-pass scanner (ingest's fast path) never accepts what the
  // parser refuses, and reports the shape the tree has.
  trb_ingest_json_shape_t sh;
  if (trb_ingest_json_fast_check(body.data(), body.size(), 0, &sh)) {
    ASSERT_EQ(GRPC_STATUS_OK, c) << body;
    EXPECT_EQ(json_is_object(root), sh.is_object) << body;
    EXPECT_EQ(sh.is_object && json_object_get(root, "data") != nullptr, sh.has_data);
    EXPECT_EQ(sh.is_object && json_object_get(root, "event_type") != nullptr,
              sh.has_event_type);
    fast_accepted++;
  }
  if (root) {
    trb_ingest_push_msg_t m;
    memset(&m, 0, sizeof(m));
    EXPECT_TRUE(Allowed(trb_ingest_push_decode(root, &m, &st))) << st.msg;
    trb_ingest_push_msg_deinit(&m);
    trb_ingest_ce_t ce;
    memset(&ce, 0, sizeof(ce));
    EXPECT_TRUE(Allowed(trb_ingest_ce_from_json(root, &ce, &st))) << st.msg;
    char scratch[TRB_INGEST_CE_LEGACY_SCRATCH];
    memset(&ce, 0, sizeof(ce));
    trb_ingest_ce_from_legacy_firestore(root, &ce, scratch);
    const json_t* datas[] = {root, json_object_get(root, "data")};
    for (const json_t* data : datas) {
      json_t* out = nullptr;
      EXPECT_TRUE(Allowed(trb_ingest_firestore_from_json(data, &out, &st))) << st.msg;
      json_decref(out);
    }
    json_decref(root);
  }
  json_t* out = nullptr;
  EXPECT_TRUE(Allowed(trb_ingest_firestore_from_proto(
      reinterpret_cast<const uint8_t*>(body.data()), body.size(), &out, &st)))
      << st.msg;
  json_decref(out);
}

TEST(CodecsFuzzTest, MutatedCorpusFixtures) {
  std::vector<std::string> files;
  std::string dir = trb_test::CorpusDir();
  trb_test::ListFiles(dir + "/push", ".json", &files);
  trb_test::ListFiles(dir + "/firestore", ".json", &files);
  trb_test::ListFiles(dir + "/firestore", ".pb", &files);
  ASSERT_GE(files.size(), 25u) << dir;
  std::mt19937 rng(20261121);
  size_t runs = 0;
  for (const auto& f : files) {
    std::string body;
    ASSERT_TRUE(trb_test::ReadFile(f, &body));
    SCOPED_TRACE(f);
    Exercise(body);
    for (int i = 0; i < 2000; i++) {
      Exercise(Mutate(body, &rng));
      runs++;
    }
  }
  std::printf("%zu mutated inputs through every codec, %zu accepted by the fast check\n",
              runs, fast_accepted);
  EXPECT_GT(fast_accepted, files.size());
}

}  // namespace
