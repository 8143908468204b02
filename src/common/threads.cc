#include "common/threads.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace rtml {

void LowerThisThreadPriority() {
  // On Linux a thread's nice value is its own: setpriority on its thread id.
  (void)setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 10);
}

}  // namespace rtml
