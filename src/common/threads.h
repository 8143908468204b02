// Thread helpers.
// Thread-safety: each call concerns the calling thread only.
#pragma once

namespace rtml {

// Lowers the calling thread's CPU priority (nice 10), for background work
// that must not compete with serving threads: model loads, materializations,
// freeing retired models. Best effort: ignored where the system refuses.
void LowerThisThreadPriority();

// Asks the scheduler to run the calling thread in slices of `us`
// microseconds (Linux 6.12+, EEVDF's sched_attr.sched_runtime, 100 to
// 100,000) at its current nice value. A thread that wakes with a shorter
// slice than the running one preempts it at once; one with a longer slice
// (a scoring thread's) yields to such wake-ups (its event loop's) and keeps
// the CPU longer otherwise. Its share of the CPU is unchanged. Best effort:
// false where the kernel does not take it.
bool RequestSchedulerSlice(int us);

// Names the calling thread for top -H, perf and /proc (at most 15
// characters are kept). Best effort.
void NameThisThread(const char* name);

}  // namespace rtml
