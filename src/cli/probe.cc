// `rtml probe`: asks a running rtml whether it is alive (GET /healthz) or
// ready (--ready: GET /readyz) and exits 0 if so, 1 if not: the container
// image's HEALTHCHECK, and what an exec probe or a script can run where
// there is no curl. Without --url it finds the server the way `rtml serve`
// would from the same config file and environment.
#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "cli/http_get.h"
#include "config/config.h"

namespace rtml::cli {
namespace {

// Where a server listening on `host` is reached from this machine.
std::string LocalHost(const std::string& host) {
  if (host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]") return "127.0.0.1";
  return host;
}

Result<Url> ServerUrl(const ProbeOptions& o) {
  if (!o.url.empty()) return ParseUrl(o.url);
  ASSIGN_OR_RETURN(config::Config c, config::LoadConfig(o.config_path));
  if (!c.http.tls_cert.empty()) {
    return FailedPrecondition(
        "http.tls is set and rtml probe speaks plain HTTP: probe over HTTPS instead "
        "(curl -fsk https://HOST:PORT/healthz, or an httpGet probe with scheme HTTPS)");
  }
  if (c.http.port == 0) return FailedPrecondition("http.port is 0 (any): give --url");
  return Url{LocalHost(c.http.host), std::to_string(c.http.port)};
}

}  // namespace

int RunProbe(const ProbeOptions& o) {
  auto url = ServerUrl(o);
  if (!url.ok()) {
    std::fprintf(stderr, "rtml probe: %s\n", url.status().ToString().c_str());
    return 2;
  }
  const std::string target = o.ready ? "/readyz" : "/healthz";
  auto body = HttpGet(*url, target, o.timeout);
  if (!body.ok()) {
    std::fprintf(stderr, "rtml probe: %s\n", body.status().ToString().c_str());
    return 1;
  }
  std::printf("%s\n", body->c_str());
  return 0;
}

}  // namespace rtml::cli
