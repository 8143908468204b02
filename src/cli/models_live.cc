// `rtml models inspect --url URL`: a running rtml's live repository (every
// version's state, the serving policies in force, shadow agreement), read
// from its GET /v1/repository/index and /v1/stats.
#include <simdjson.h>

#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "cli/http_get.h"
#include "common/status.h"

namespace rtml::cli {
namespace {
namespace dom = simdjson::dom;

void PrintPolicies(dom::element index, std::string_view model) {
  dom::array policies;
  if (index["serving_policies"].get(policies)) return;
  for (dom::element p : policies) {
    if (std::string_view(p["name"]) != model) continue;
    std::string_view state = p["state"];
    std::printf("  serving.yaml: %.*s", int(state.size()), state.data());
    std::string_view reason;
    if (!p["reason"].get(reason)) std::printf(" (%.*s)", int(reason.size()), reason.data());
    std::printf("\n    in force: %s\n", simdjson::minify(p["in_force"]).c_str());
  }
}

void PrintShadow(dom::element stats, std::string_view model) {
  dom::array shadow;
  if (stats["shadow"].get(shadow)) return;
  for (dom::element s : shadow) {
    if (std::string_view(s["model"]) != model) continue;
    double disagreement = 0;
    const bool decisions = !s["decision_disagreement"].get(disagreement);
    std::printf("  shadow version %lld against %lld: %llu rows, mean |diff| %.6f",
                static_cast<long long>(int64_t(s["version"])),
                static_cast<long long>(int64_t(s["against"])),
                static_cast<unsigned long long>(uint64_t(s["rows"])), double(s["mean_abs_diff"]));
    if (decisions) std::printf(", decisions differ %.2f%%", 100 * disagreement);
    std::printf("\n");
  }
}

}  // namespace

int RunModelsInspectLive(const std::string& url_text) {
  auto fail = [](const Status& s) {
    std::fprintf(stderr, "rtml models inspect: %s\n", s.message().c_str());
    return 1;
  };
  auto url = ParseUrl(url_text);
  if (!url.ok()) return fail(url.status());
  auto index_text = HttpGet(*url, "/v1/repository/index");
  if (!index_text.ok()) return fail(index_text.status());
  auto stats_text = HttpGet(*url, "/v1/stats");
  if (!stats_text.ok()) return fail(stats_text.status());
  dom::parser p1, p2;
  dom::element index, stats;
  if (p1.parse(*index_text).get(index) || p2.parse(*stats_text).get(stats)) {
    return fail(Internal("the server's answer is not JSON"));
  }
  std::string model;
  for (dom::element v : index["models"].get_array()) {
    const std::string_view name = v["name"];
    if (name != model) {
      if (!model.empty()) PrintPolicies(index, model), PrintShadow(stats, model);
      model = std::string(name);
      std::printf("%s\n", model.c_str());
    }
    std::string_view state = v["state"];
    std::printf("  version %lld: %.*s%s, %llu bytes", static_cast<long long>(int64_t(v["version"])),
                int(state.size()), state.data(), bool(v["serving"]) ? ", serving" : "",
                static_cast<unsigned long long>(uint64_t(v["size_bytes"])));
    std::string_view reason;
    if (!v["reason"].get(reason)) std::printf(": %.*s", int(reason.size()), reason.data());
    std::printf("\n");
  }
  if (!model.empty()) PrintPolicies(index, model), PrintShadow(stats, model);
  return 0;
}

}  // namespace rtml::cli
