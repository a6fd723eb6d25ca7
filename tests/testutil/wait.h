// wait.h — condition waits with deadlines for tests (never sleep).
#ifndef TRB_TESTS_TESTUTIL_WAIT_H
#define TRB_TESTS_TESTUTIL_WAIT_H

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>

namespace trb_test {

// A mutex + condition variable pair: mutate state under Lock(), Notify(),
// and WaitFor(pred, ms) returns pred() once true or false at the deadline.
class Cond {
 public:
  std::unique_lock<std::mutex> Lock() { return std::unique_lock<std::mutex>(mu_); }
  void Notify() { cv_.notify_all(); }
  // Runs `fn` under the lock and wakes waiters before unlocking, so a
  // waiter that then destroys this object never races the notification.
  void Update(const std::function<void()>& fn) {
    std::lock_guard<std::mutex> g(mu_);
    fn();
    cv_.notify_all();
  }
  bool WaitFor(const std::function<bool()>& pred, int timeout_ms = 30000) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, std::chrono::milliseconds(timeout_ms), pred);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
};

}  // namespace trb_test

#endif  // TRB_TESTS_TESTUTIL_WAIT_H
