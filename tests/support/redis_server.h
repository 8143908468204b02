// RedisServer: a real redis-server on a free loopback port for tests, started
// and stopped by the test itself (no persistence, no other address).
#pragma once

#include <string>

namespace rtml::testing {

class RedisServer {
 public:
  // Starts redis-server and waits (polling PING) until it answers.
  // Aborts the test binary with a message if it cannot.
  RedisServer();
  ~RedisServer();
  int port() const { return port_; }
  void Stop();     // SIGTERM and wait
  void Restart();  // start again on the same port

 private:
  void Start();
  int port_ = 0;
  int pid_ = -1;
};

// A TCP port on 127.0.0.1 that was free a moment ago.
int FreePort();

}  // namespace rtml::testing
