// feature_lookup: online-store lookup latency and throughput, as the Scorer
// does them (OnlineReader::Read, one call per request batch), for 1 and 100
// entities of 10 float features, on RocksDB and on Redis. One client thread.
//
//   build/bench/feature_lookup --redis-port P [--rocksdb DIR] [--entities N] [--seconds S]
//
// bench/feature_lookup.sh runs it beside redis-benchmark on the same Redis.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "features/online_reader.h"
#include "features/redis_store.h"
#include "features/rocksdb_store.h"

using namespace rtml;
using namespace rtml::features;

namespace {

constexpr char kDefs[] = R"(
project: bench
entities: [{name: user, join_key: user_id, dtype: int64}]
feature_views:
  - name: stats
    entities: [user]
    features: [{name: f0}, {name: f1}, {name: f2}, {name: f3}, {name: f4},
               {name: f5}, {name: f6}, {name: f7}, {name: f8}, {name: f9}]
)";

struct Figures {
  double p50_us, p99_us, calls_per_s, entities_per_s;
};

Status Populate(StoreSession& s, const FeatureView& view, int n) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<double> u(0, 1000);
  std::vector<WriteRecord> batch;
  for (int i = 0; i < n; ++i) {
    WriteRecord r{std::to_string(i), 1'000'000, {}};
    for (int f = 0; f < 10; ++f) r.values.push_back(EncodeFloat(u(rng)));
    batch.push_back(std::move(r));
    if (batch.size() == 1000 || i == n - 1) {
      WriteCounts c;
      RETURN_IF_ERROR(s.Write(view, batch, &c));
      batch.clear();
    }
  }
  return Status::Ok();
}

Figures Measure(StoreSession& s, const OnlineReader& reader, int batch, int n_entities,
                double seconds) {
  std::mt19937 rng(2);
  std::uniform_int_distribution<int> pick(0, n_entities - 1);
  std::vector<std::string> keys(batch);
  OnlineReader::Scratch scratch;
  std::vector<double> lat;
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  const auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < end) {
    for (auto& k : keys) k = std::to_string(pick(rng));
    const auto a = std::chrono::steady_clock::now();
    if (!reader.Read(s, batch, keys, &scratch).ok()) {
      std::fprintf(stderr, "read failed\n");
      std::exit(1);
    }
    lat.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - a)
                      .count());
  }
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::sort(lat.begin(), lat.end());
  return {lat[lat.size() / 2], lat[lat.size() * 99 / 100], lat.size() / total,
          lat.size() * batch / total};
}

}  // namespace

int main(int argc, char** argv) {
  int redis_port = 0, n_entities = 100000;
  double seconds = 3;
  std::string rocks_dir = (std::filesystem::temp_directory_path() / "rtml_bench_rocksdb").string();
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--redis-port")) redis_port = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--rocksdb")) rocks_dir = argv[i + 1];
    if (!std::strcmp(argv[i], "--entities")) n_entities = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--seconds")) seconds = std::atof(argv[i + 1]);
  }
  auto defs = Definitions::Parse(kDefs, ".", "bench").value();
  const FeatureView& view = *defs.FindView("stats");
  auto reader = OnlineReader::Create(defs, std::vector<FeatureRef>(
                                               {{0, 0}, {0, 1}, {0, 2}, {0, 3}, {0, 4},
                                                {0, 5}, {0, 6}, {0, 7}, {0, 8}, {0, 9}}))
                    .value();
  std::filesystem::remove_all(rocks_dir);
  std::vector<std::pair<std::string, std::unique_ptr<OnlineStore>>> stores;
  stores.emplace_back("rocksdb", OpenRocksDbStore({.path = rocks_dir}).value());
  if (redis_port > 0) {
    stores.emplace_back("redis", NewRedisStore({.port = redis_port, .key_prefix = "bench"}));
  }
  std::printf("| store | entities per call | p50 µs | p99 µs | calls/s | entities/s |\n");
  std::printf("|---|---:|---:|---:|---:|---:|\n");
  for (auto& [name, store] : stores) {
    auto session = store->NewSession();
    std::fprintf(stderr, "%s: writing %d entities x 10 features ...\n", name.c_str(), n_entities);
    if (Status s = Populate(*session, view, n_entities); !s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      return 1;
    }
    for (int batch : {1, 100}) {
      std::fprintf(stderr, "%s: %d-entity lookups for %.0f s ...\n", name.c_str(), batch, seconds);
      Figures f = Measure(*session, reader, batch, n_entities, seconds);
      std::printf("| rtml %s | %d | %.1f | %.1f | %.0f | %.0f |\n", name.c_str(), batch, f.p50_us,
                  f.p99_us, f.calls_per_s, f.entities_per_s);
    }
  }
  std::filesystem::remove_all(rocks_dir);
  return 0;
}
