// Thread helpers.
// Thread-safety: each call concerns the calling thread only.
#pragma once

namespace rtml {

// Lowers the calling thread's CPU priority (nice 10), for background work
// that must not compete with serving threads: model loads, materializations,
// freeing retired models. Best effort: ignored where the system refuses.
void LowerThisThreadPriority();

}  // namespace rtml
