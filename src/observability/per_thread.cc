#include "observability/per_thread.h"

#include <mutex>
#include <vector>

namespace rtml::observability {
namespace {

// Slot numbers not held by a live thread.
class FreeSlots {
 public:
  FreeSlots() {
    for (int i = kMaxThreads - 1; i >= 1; --i) free_.push_back(i);
  }
  int Take() {
    std::lock_guard lock(mu_);
    if (free_.empty()) return 0;
    const int slot = free_.back();
    free_.pop_back();
    return slot;
  }
  void Give(int slot) {
    if (slot == 0) return;
    std::lock_guard lock(mu_);
    free_.push_back(slot);
  }

 private:
  std::mutex mu_;
  std::vector<int> free_;
};

FreeSlots& Free() {
  static FreeSlots* free = new FreeSlots;  // outlives every thread's exit
  return *free;
}

struct ThreadSlot {
  ThreadSlot() : slot(Free().Take()) {}
  ~ThreadSlot() { Free().Give(slot); }
  const int slot;
};

}  // namespace

int ThisThreadSlot() {
  thread_local const ThreadSlot mine;
  return mine.slot;
}

}  // namespace rtml::observability
