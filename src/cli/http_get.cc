#include "cli/http_get.h"

#include <utility>  // before Boost (Asio under g++ 12 in C++20 mode)

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <cstdlib>

namespace rtml::cli {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;

Result<Url> ParseUrl(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (!url.starts_with(kScheme)) {
    return InvalidArgument("--url must look like http://127.0.0.1:8080, not '" +
                           std::string(url) + "'");
  }
  url.remove_prefix(kScheme.size());
  url = url.substr(0, url.find('/'));
  const size_t colon = url.rfind(':');
  if (colon == std::string_view::npos) return Url{std::string(url), "80"};
  return Url{std::string(url.substr(0, colon)), std::string(url.substr(colon + 1))};
}

// Asynchronous under the hood, so that `timeout` bounds the whole exchange
// (a tcp_stream's expiry applies to its asynchronous operations only).
Result<std::string> HttpGet(const Url& url, const std::string& target,
                            std::chrono::milliseconds timeout) {
  asio::io_context io;
  asio::ip::tcp::resolver resolver(io);
  beast::tcp_stream stream(io);
  bhttp::request<bhttp::empty_body> req(bhttp::verb::get, target, 11);
  req.set(bhttp::field::host, url.host);
  if (const char* token = std::getenv("RTML_ADMIN_TOKEN"); token && *token) {
    req.set(bhttp::field::authorization, std::string("Bearer ") + token);
  }
  beast::flat_buffer buffer;
  bhttp::response<bhttp::string_body> res;
  beast::error_code failed;
  const auto fail = [&](beast::error_code ec) { failed = ec; };
  beast::error_code resolve_ec;
  const auto endpoints = resolver.resolve(url.host, url.port, resolve_ec);
  if (resolve_ec) failed = resolve_ec;
  if (!failed) {
    stream.expires_after(timeout);
    stream.async_connect(endpoints, [&](beast::error_code ec, const auto&) {
      if (ec) return fail(ec);
      bhttp::async_write(stream, req, [&](beast::error_code ec, size_t) {
        if (ec) return fail(ec);
        bhttp::async_read(stream, buffer, res, [&](beast::error_code ec, size_t) {
          if (ec) fail(ec);
        });
      });
    });
    io.run();
  }
  if (failed) {
    return Status(StatusCode::kUnavailable,
                  "cannot reach " + url.host + ":" + url.port + ": " + failed.message() +
                      " (is rtml serve running there?)");
  }
  if (res.result_int() == 401 || res.result_int() == 403) {
    return FailedPrecondition(target + " needs the admin token: set RTML_ADMIN_TOKEN");
  }
  if (res.result_int() != 200) {
    return FailedPrecondition(target + " answered " + std::to_string(res.result_int()) + ": " +
                              res.body());
  }
  return res.body();
}

}  // namespace rtml::cli
