// Feature definitions, with the concepts Feast users know: entities (a join
// key and its type), feature views (typed features of one or more entities,
// with a TTL, an online switch and an offline source), and feature services
// (named lists of view:feature references a model consumes).
//
// Loaded from a features.yaml once at start-up, validated, and given a version
// hash (of the canonical definitions) that `rtml features apply` records in
// the online store's registry. Names are resolved to indexes here, once.
// Thread-safety: immutable after Load; share freely.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "config/yaml.h"
#include "schema/schema.h"

namespace rtml::features {

enum class ValueType { kFloat, kInt, kBool, kString };
std::string_view ValueTypeName(ValueType t);
Result<ValueType> ParseValueType(std::string_view name);

struct Entity {
  std::string name;
  std::string join_key;
  ValueType dtype = ValueType::kInt;  // kInt or kString
};

struct Feature {
  std::string name;
  ValueType dtype = ValueType::kFloat;
};

struct Source {
  std::string path;                           // CSV or JSON Lines file, or empty
  std::string timestamp_field = "event_timestamp";
  std::string kafka_topic;                    // a stream source (used by the stream worker)
};

struct StreamAggregation;  // features/stream_view.h

struct FeatureView {
  std::string name;
  std::vector<int> entities;  // indexes into Definitions::entities
  std::vector<Feature> features;
  int64_t ttl_seconds = 0;  // 0: values never go stale
  bool online = true;
  Source source;
  std::string push_source;  // name accepted as push_source_name (default: the view name)
  // Set for a stream feature view: its features are aggregations of a
  // topic's events, computed by rtml (features/stream_view.h).
  std::shared_ptr<const StreamAggregation> aggregation;

  int FeatureIndex(std::string_view name) const;
};

struct FeatureRef {
  int view = 0;
  int feature = 0;
};

struct FeatureService {
  std::string name;
  std::vector<FeatureRef> features;
};

// Reads `node`'s "source" ({path, timestamp_field, kafka_topic}; a relative
// path is resolved against base_dir) into *out, keeping its defaults.
Status ReadSource(const YAML::Node& node, const std::string& where, const std::string& base_dir,
                  Source* out);
// Reads `node`'s "entities" (names) at `where` as indexes into `entities`:
// at least one, each known.
Status ReadEntityRefs(const YAML::Node& node, const std::string& where,
                      const std::vector<Entity>& entities, std::vector<int>* out);

class Definitions {
 public:
  // Parses and validates features.yaml; relative source paths are resolved
  // against base_dir. Errors name the file, the object and the key.
  static Result<Definitions> Parse(std::string_view yaml, const std::string& base_dir,
                                   std::string_view where);
  static Result<Definitions> Load(const std::string& path);

  const std::string& project() const { return project_; }
  const std::vector<Entity>& entities() const { return entities_; }
  const std::vector<FeatureView>& views() const { return views_; }
  const std::vector<FeatureService>& services() const { return services_; }
  // Hex hash of the canonical definitions: changes when any definition does.
  const std::string& version_hash() const { return version_hash_; }
  const std::string& source_text() const { return source_text_; }

  const FeatureView* FindView(std::string_view name) const;
  int ViewIndex(std::string_view name) const;
  // By view name or push_source name.
  const FeatureView* FindPushTarget(std::string_view name) const;
  const FeatureService* FindService(std::string_view name) const;
  // Resolves "view:feature" (Feast's reference form).
  Result<FeatureRef> ResolveRef(std::string_view ref) const;
  std::string RefName(FeatureRef ref) const;  // "view:feature"

  // JSON for GET /v1/features.
  std::string ToJson() const;

 private:
  std::string project_ = "default";
  std::vector<Entity> entities_;
  std::vector<FeatureView> views_;
  std::vector<FeatureService> services_;
  std::string version_hash_;
  std::string source_text_;
};

}  // namespace rtml::features
