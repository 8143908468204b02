// HTTP requests as rtml's server reads them (Beast's parser with the
// server's header and body limits, as many requests as the bytes hold on one
// keep-alive connection), each handed to the routes that answer in
// `rtml serve` (predict, features, Feast's API, models, metrics, ...), with
// the deadline header parsed as admission control parses it. Deferred work
// (materialize, model loads) is built but not run.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/http.hpp>

#include "fuzz_env.h"
#include "http/routes.h"
#include "resilience/admission.h"

namespace bhttp = boost::beast::http;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  rtml::fuzz::Env& env = rtml::fuzz::DemoEnv();
  static rtml::http::Routes* routes = [&] {
    auto* r = new rtml::http::Routes(*env.scorer, env.store.get(), &env.metrics);
    r->set_ready(true);
    return r;
  }();
  static boost::asio::io_context io;
  static std::unique_ptr<rtml::http::ThreadState> state = routes->NewThreadState(io);
  std::string_view input(reinterpret_cast<const char*>(data), size);
  for (int request = 0; request < 8 && !input.empty(); ++request) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.body_limit(1 << 20);
    parser.header_limit(16 * 1024);
    parser.eager(true);
    boost::beast::error_code ec;
    const size_t used = parser.put(boost::asio::buffer(input.data(), input.size()), ec);
    rtml::http::Response res;
    if (ec && ec != bhttp::error::need_more) {
      routes->HandleUnreadable(ec == bhttp::error::body_limit
                                   ? bhttp::status::payload_too_large
                                   : bhttp::status::bad_request,
                               ec.message(), parser.get().target(), res);
      return 0;
    }
    if (!parser.is_done()) return 0;
    input.remove_prefix(used);
    const rtml::http::Request& req = parser.get();
    if (routes->Queued(req)) {
      auto timeout = rtml::resilience::ParseTimeoutMs(req[rtml::http::kTimeoutHeader],
                                                      rtml::http::kTimeoutHeader);
      if (!timeout.ok()) {
        routes->HandleRefused(req, timeout.status(), res, *state);
        continue;
      }
    }
    rtml::http::RequestContext context;
    (void)routes->Handle(req, res, *state, context);
  }
  return 0;
}
