#include "common/threads.h"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>

namespace rtml {

void LowerThisThreadPriority() {
  // On Linux a thread's nice value is its own: setpriority on its thread id.
  (void)setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 10);
}

bool RequestSchedulerSlice(int us) {
#ifdef SYS_sched_setattr
  // The kernel's struct sched_attr (include/uapi/linux/sched/types.h); glibc
  // has no wrapper for sched_setattr.
  struct {
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime, sched_deadline, sched_period;
  } attr{};
  attr.size = sizeof(attr);
  attr.sched_policy = SCHED_OTHER;
  attr.sched_nice = getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)));
  attr.sched_runtime = static_cast<uint64_t>(us) * 1000;
  return syscall(SYS_sched_setattr, 0, &attr, 0) == 0;
#else
  (void)us;
  return false;
#endif
}

void NameThisThread(const char* name) {
  char truncated[16] = {};
  for (size_t i = 0; i < sizeof(truncated) - 1 && name[i] != '\0'; ++i) truncated[i] = name[i];
  (void)pthread_setname_np(pthread_self(), truncated);
}

}  // namespace rtml
