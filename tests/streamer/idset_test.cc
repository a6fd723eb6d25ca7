// The message-id set (src/streamer/idset.h) model-checked against a plain
// std::map: random claims, marks (by id and through references), forgets
// and tagged forgets over a small id space, so slab cells are freed and
// reused many times, with short ids (slab cells) and long ones (their own
// allocation). Under ASan a reference used after its cell was freed reports.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

extern "C" {
#include "src/streamer/idset.h"
}

namespace {

struct Model {
  struct E {
    trb_id_state_t state;
    uint64_t tag;
    std::vector<intptr_t> waiters;
    trb_idset_ref_t ref;  // held by the claimer while PENDING, else NULL
  };
  std::map<std::string, E> m;
};

struct Handed {
  std::vector<std::pair<intptr_t, trb_id_state_t>> got;
  static void Cb(void *ctx, void *waiter, trb_id_state_t st) {
    static_cast<Handed *>(ctx)->got.emplace_back(
        reinterpret_cast<intptr_t>(waiter), st);
  }
};

std::string IdOf(int k) {
  std::string s = std::to_string(1000000000000000 + k);
  // Every 7th id is long: over the inline capacity of a slab cell.
  if (k % 7 == 0) s += std::string(40 + k % 13, 'x');
  return s;
}

std::vector<intptr_t> Sorted(std::vector<intptr_t> v) {
  std::sort(v.begin(), v.end());
  return v;
}

TEST(IdSet, ModelCheckedAgainstMap) {
  std::mt19937 rng(12345);
  trb_idset_t *s = trb_idset_create();
  ASSERT_NE(s, nullptr);
  Model model;
  intptr_t next_waiter = 1;
  const int kIds = 3000;
  for (int step = 0; step < 200000; step++) {
    std::string id = IdOf(static_cast<int>(rng() % kIds));
    auto it = model.m.find(id);
    int op = static_cast<int>(rng() % 6);
    Handed h;
    switch (op) {
      case 0:
      case 1: {  // claim
        intptr_t w = next_waiter++;
        uint64_t tag = 0;
        trb_idset_ref_t ref = nullptr;
        trb_id_state_t r = trb_idset_claim_ref(
            s, id.data(), id.size(), reinterpret_cast<void *>(w), &tag, &ref);
        if (it == model.m.end()) {
          ASSERT_EQ(r, TRB_ID_NONE) << id;
          ASSERT_NE(ref, nullptr);
          model.m[id] = {TRB_ID_PENDING, 0, {}, ref};
        } else {
          ASSERT_EQ(r, it->second.state) << id;
          ASSERT_EQ(tag, it->second.tag);
          ASSERT_EQ(ref, nullptr);
          if (r == TRB_ID_PENDING) it->second.waiters.push_back(w);
        }
        break;
      }
      case 2: {  // mark WRITTEN / DEAD, through the reference when held
        trb_id_state_t st = rng() % 2 ? TRB_ID_WRITTEN : TRB_ID_DEAD;
        uint64_t tag = rng() % 4 + 1;
        if (it != model.m.end() && it->second.ref && rng() % 2) {
          trb_idset_mark_ref(s, it->second.ref, st, tag, Handed::Cb, &h);
        } else {
          trb_idset_mark(s, id.data(), id.size(), st, tag, Handed::Cb, &h);
        }
        if (it == model.m.end()) {
          model.m[id] = {st, tag, {}, nullptr};
          ASSERT_TRUE(h.got.empty());
        } else {
          std::vector<intptr_t> got;
          for (auto &g : h.got) {
            ASSERT_EQ(g.second, st);
            got.push_back(g.first);
          }
          ASSERT_EQ(Sorted(got), Sorted(it->second.waiters));
          it->second = {st, tag, {}, nullptr};
        }
        break;
      }
      case 3: {  // forget
        trb_idset_forget(s, id.data(), id.size(), Handed::Cb, &h);
        std::vector<intptr_t> got;
        for (auto &g : h.got) {
          ASSERT_EQ(g.second, TRB_ID_NONE);
          got.push_back(g.first);
        }
        if (it == model.m.end()) {
          ASSERT_TRUE(got.empty());
        } else {
          ASSERT_EQ(Sorted(got), Sorted(it->second.waiters));
          model.m.erase(it);
        }
        break;
      }
      case 4: {  // forget tagged
        uint64_t tag = rng() % 4 + 1;
        bool want = it != model.m.end() && it->second.tag == tag &&
                    it->second.state != TRB_ID_PENDING;
        ASSERT_EQ(trb_idset_forget_tagged(s, id.data(), id.size(), tag), want);
        if (want) model.m.erase(it);
        break;
      }
      default: {  // get
        trb_id_state_t want =
            it == model.m.end() ? TRB_ID_NONE : it->second.state;
        ASSERT_EQ(trb_idset_get(s, id.data(), id.size()), want);
        break;
      }
    }
    if (step % 10007 == 0) {
      ASSERT_EQ(trb_idset_size(s), model.m.size());
    }
  }
  ASSERT_EQ(trb_idset_size(s), model.m.size());
  for (auto &e : model.m) {
    ASSERT_EQ(trb_idset_get(s, e.first.data(), e.first.size()), e.second.state);
  }
  // Destroy hands back every parked waiter with NONE.
  size_t parked = 0;
  for (auto &e : model.m) parked += e.second.waiters.size();
  Handed h;
  trb_idset_destroy(s, Handed::Cb, &h);
  EXPECT_EQ(h.got.size(), parked);
  for (auto &g : h.got) EXPECT_EQ(g.second, TRB_ID_NONE);
}

// A freed cell is reused by the next id, and the earlier id's reference
// is not confused with it: forgetting one id leaves every other one.
TEST(IdSet, CellsAreReusedAndEntriesNeverMove) {
  trb_idset_t *s = trb_idset_create();
  ASSERT_NE(s, nullptr);
  std::vector<std::string> ids;
  std::vector<trb_idset_ref_t> refs;
  for (int i = 0; i < 5000; i++) {
    ids.push_back(IdOf(i));
    trb_idset_ref_t ref = nullptr;
    ASSERT_EQ(trb_idset_claim_ref(s, ids[i].data(), ids[i].size(), nullptr,
                                  nullptr, &ref),
              TRB_ID_NONE);
    ASSERT_NE(ref, nullptr);
    refs.push_back(ref);
  }
  // Every reference is still good after the slot arrays grew many times.
  for (int i = 0; i < 5000; i++)
    trb_idset_mark_ref(s, refs[i], TRB_ID_WRITTEN, static_cast<uint64_t>(i),
                       nullptr, nullptr);
  for (int i = 0; i < 5000; i += 2) {
    ASSERT_TRUE(trb_idset_forget_tagged(s, ids[i].data(), ids[i].size(),
                                        static_cast<uint64_t>(i)));
  }
  ASSERT_EQ(trb_idset_size(s), 2500u);
  for (int i = 5000; i < 7500; i++) {
    std::string id = IdOf(i);
    ASSERT_EQ(trb_idset_claim(s, id.data(), id.size(), nullptr, nullptr),
              TRB_ID_NONE);
  }
  for (int i = 0; i < 5000; i++) {
    ASSERT_EQ(trb_idset_get(s, ids[i].data(), ids[i].size()),
              i % 2 ? TRB_ID_WRITTEN : TRB_ID_NONE)
        << i;
  }
  ASSERT_EQ(trb_idset_size(s), 5000u);
  trb_idset_destroy(s, nullptr, nullptr);
}

}  // namespace
