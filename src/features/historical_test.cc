// The point-in-time join must answer what the online store answers at the
// same moment, after materializing everything up to that moment.
#include "features/historical.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/time_format.h"
#include "features/ingest.h"

namespace rtml::features {
namespace {

const std::string kDir = std::string(RTML_SOURCE_DIR) + "/tests/testdata/features/";

// Materializes the view's source rows with event time <= t into a fresh store.
std::unique_ptr<OnlineStore> MaterializedUpTo(const Definitions& defs, int64_t t) {
  auto store = NewMemoryStore();
  auto session = store->NewSession();
  const FeatureView& view = *defs.FindView("user_stats");
  std::optional<ViewIngestor> g;
  IngestResult result;
  EXPECT_TRUE(ReadSourceFile(view.source.path, [&](const std::vector<std::string>& cols,
                                                   size_t row, std::span<const RawValue> cells) {
                g.emplace(ViewIngestor::Create(defs, view, cols).value());
                g->SetWindow(INT64_MIN, t + 1);
                g->Add(row, cells, &result);
                return g->Flush(*session, &result);
              }).ok());
  return store;
}

TEST(HistoricalTest, PointInTimeJoinMatchesOnlineReadsAtTheSameTimes) {
  auto defs = Definitions::Load(kDir + "features.yaml").value();
  const std::vector<FeatureRef> refs = {defs.ResolveRef("user_stats:f3").value(),
                                        defs.ResolveRef("user_stats:f4").value(),
                                        defs.ResolveRef("user_stats:country").value()};
  auto index = PointInTimeIndex::Build(defs, refs);
  ASSERT_TRUE(index.ok()) << index.status().ToString();
  auto reader = OnlineReader::Create(defs, refs).value();
  const int64_t day = ParseTimestamp("2026-11-26T00:00:00Z").value();
  const int64_t times[] = {day - 86400000000LL,      day - 1,       day,
                           day + 1800000000LL,       day + 3600000000LL, day + 3600000001LL,
                           day + 3600000000LL * 2,   day + 86400000000LL};
  int compared = 0, present = 0;
  for (int64_t t : times) {
    auto store = MaterializedUpTo(defs, t);
    auto session = store->NewSession();
    std::vector<std::string> users = {"1", "2", "3", "4"};
    OnlineReader::Scratch scratch;
    ASSERT_TRUE(reader.Read(*session, users.size(), users, &scratch).ok());
    for (size_t u = 0; u < users.size(); ++u) {
      for (size_t f = 0; f < refs.size(); ++f) {
        const auto online = reader.Get(scratch, u, f, t);
        const auto offline = index->Lookup(f, users[u], t);
        SCOPED_TRACE(FormatTimestamp(t) + " user " + users[u] + " feature " +
                     std::to_string(f));
        EXPECT_EQ(online.status, offline.status);
        ASSERT_EQ(online.value != nullptr, offline.value != nullptr);
        if (online.value) {
          EXPECT_EQ(**online.value, **offline.value);
          ++present;
        }
        ++compared;
      }
    }
  }
  EXPECT_EQ(compared, 8 * 4 * 3);
  EXPECT_GT(present, 10);
}

TEST(HistoricalTest, WritesTheJoinedCsv) {
  auto defs = Definitions::Load(kDir + "features.yaml").value();
  const auto dir = std::filesystem::temp_directory_path();
  const std::string entities = (dir / "rtml_hist_entities.csv").string();
  const std::string out = (dir / "rtml_hist_out.csv").string();
  std::ofstream(entities) << "user_id,event_timestamp,label\n"
                             "1,2026-11-25T12:00:00Z,0\n"   // sees the 11-25 row, but TTL 1h
                             "1,2026-11-25T00:30:00Z,1\n"   // within the hour: 9.0
                             "1,2026-11-26T00:10:00Z,0\n"   // 1.5
                             "2,2026-11-26T00:10:00Z,0\n"   // 0.25, f4 null
                             "5,2026-11-26T00:10:00Z,0\n";  // unknown
  auto r = GetHistoricalFeatures(defs, defs.FindService("user_inputs")->features,
                                 {.entities_path = entities, .out_path = out});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->rows, 5u);
  std::ifstream in(out);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(text,
            "user_id,event_timestamp,label,f3,f4\n"
            "1,2026-11-25T12:00:00Z,0,,\n"
            "1,2026-11-25T00:30:00Z,1,9.0,9.0\n"
            "1,2026-11-26T00:10:00Z,0,1.5,-2.0\n"
            "2,2026-11-26T00:10:00Z,0,0.25,\n"
            "5,2026-11-26T00:10:00Z,0,,\n");
  std::filesystem::remove(entities);
  std::filesystem::remove(out);
}

}  // namespace
}  // namespace rtml::features
