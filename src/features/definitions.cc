#include "features/definitions.h"

#include <cstdio>
#include <set>

#include "common/hash.h"
#include "common/json_writer.h"
#include "config/yaml.h"
#include "features/stream_view.h"

namespace rtml::features {
using config::CheckKeys;
using config::Read;

namespace {

bool ValidName(std::string_view n) {
  if (n.empty()) return false;
  for (char c : n) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  }
  return true;
}

Status NameCheck(const std::string& name, const std::string& where) {
  if (!ValidName(name)) {
    return FailedPrecondition(where + ": name '" + name +
                              "' must be letters, digits, '_' or '-'");
  }
  return Status::Ok();
}

}  // namespace

std::string_view ValueTypeName(ValueType t) {
  switch (t) {
    case ValueType::kFloat: return "float";
    case ValueType::kInt: return "int64";
    case ValueType::kBool: return "bool";
    case ValueType::kString: return "string";
  }
  return "float";
}

Result<ValueType> ParseValueType(std::string_view n) {
  if (n == "float" || n == "float32" || n == "float64" || n == "double") return ValueType::kFloat;
  if (n == "int" || n == "int32" || n == "int64") return ValueType::kInt;
  if (n == "bool") return ValueType::kBool;
  if (n == "string") return ValueType::kString;
  return FailedPrecondition("unknown dtype '" + std::string(n) +
                            "' (expected float, int64, bool or string)");
}

int FeatureView::FeatureIndex(std::string_view n) const {
  for (size_t i = 0; i < features.size(); ++i) {
    if (features[i].name == n) return static_cast<int>(i);
  }
  return -1;
}

namespace {

Status ParseEntities(const YAML::Node& list, const std::string& where, std::vector<Entity>* out) {
  if (!list) return Status::Ok();
  if (!list.IsSequence()) return FailedPrecondition(where + ".entities must be a list");
  std::set<std::string> names;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string w = where + ".entities[" + std::to_string(i) + "]";
    RETURN_IF_ERROR(CheckKeys(list[i], w, {"name", "join_key", "dtype", "description"}));
    Entity e;
    std::string dtype = "int64";
    RETURN_IF_ERROR(Read(list[i], w, "name", &e.name));
    RETURN_IF_ERROR(Read(list[i], w, "join_key", &e.join_key));
    RETURN_IF_ERROR(Read(list[i], w, "dtype", &dtype));
    RETURN_IF_ERROR(NameCheck(e.name, w));
    if (e.join_key.empty()) e.join_key = e.name + "_id";
    RETURN_IF_ERROR(NameCheck(e.join_key, w + ".join_key"));
    auto t = ParseValueType(dtype);
    if (!t.ok() || (*t != ValueType::kInt && *t != ValueType::kString)) {
      return FailedPrecondition(w + ".dtype: entity keys are int64 or string, not '" + dtype + "'");
    }
    e.dtype = *t;
    if (!names.insert(e.name).second) return FailedPrecondition(w + ": duplicate entity " + e.name);
    out->push_back(std::move(e));
  }
  return Status::Ok();
}

}  // namespace

Status ReadSource(const YAML::Node& n, const std::string& w, const std::string& base_dir,
                  Source* out) {
  const YAML::Node src = n["source"];
  const std::string sw = w + ".source";
  RETURN_IF_ERROR(CheckKeys(src, sw, {"path", "timestamp_field", "kafka_topic"}));
  RETURN_IF_ERROR(Read(src, sw, "path", &out->path));
  RETURN_IF_ERROR(Read(src, sw, "timestamp_field", &out->timestamp_field));
  RETURN_IF_ERROR(Read(src, sw, "kafka_topic", &out->kafka_topic));
  if (!out->path.empty()) out->path = config::ResolvePath(base_dir, out->path);
  return Status::Ok();
}

Status ReadEntityRefs(const YAML::Node& n, const std::string& w,
                      const std::vector<Entity>& entities, std::vector<int>* out) {
  std::vector<std::string> names;
  RETURN_IF_ERROR(Read(n, w, "entities", &names));
  if (names.empty()) return FailedPrecondition(w + ".entities: at least one entity");
  for (const std::string& en : names) {
    int found = -1;
    for (size_t i = 0; i < entities.size(); ++i) {
      if (entities[i].name == en) found = static_cast<int>(i);
    }
    if (found < 0) return FailedPrecondition(w + ".entities: unknown entity '" + en + "'");
    out->push_back(found);
  }
  return Status::Ok();
}

namespace {

Result<FeatureView> ParseView(const YAML::Node& n, const std::string& w,
                              const std::vector<Entity>& entities, const std::string& base_dir) {
  RETURN_IF_ERROR(CheckKeys(n, w, {"name", "entities", "features", "ttl_seconds", "online",
                                   "source", "push_source", "description", "tags"}));
  FeatureView v;
  RETURN_IF_ERROR(Read(n, w, "name", &v.name));
  RETURN_IF_ERROR(NameCheck(v.name, w));
  RETURN_IF_ERROR(ReadEntityRefs(n, w, entities, &v.entities));
  RETURN_IF_ERROR(Read(n, w, "ttl_seconds", &v.ttl_seconds));
  if (v.ttl_seconds < 0) return FailedPrecondition(w + ".ttl_seconds must be >= 0");
  RETURN_IF_ERROR(Read(n, w, "online", &v.online));
  RETURN_IF_ERROR(Read(n, w, "push_source", &v.push_source));
  const YAML::Node feats = n["features"];
  if (!feats || !feats.IsSequence() || feats.size() == 0) {
    return FailedPrecondition(w + ".features: a non-empty list is required");
  }
  for (size_t i = 0; i < feats.size(); ++i) {
    const std::string fw = w + ".features[" + std::to_string(i) + "]";
    RETURN_IF_ERROR(CheckKeys(feats[i], fw, {"name", "dtype", "description"}));
    Feature f;
    std::string dtype = "float";
    RETURN_IF_ERROR(Read(feats[i], fw, "name", &f.name));
    RETURN_IF_ERROR(NameCheck(f.name, fw));
    RETURN_IF_ERROR(Read(feats[i], fw, "dtype", &dtype));
    auto t = ParseValueType(dtype);
    if (!t.ok()) return t.status().Annotate(fw);
    f.dtype = *t;
    if (v.FeatureIndex(f.name) >= 0) return FailedPrecondition(fw + ": duplicate feature");
    for (int e : v.entities) {
      if (entities[e].join_key == f.name) {
        return FailedPrecondition(fw + ": '" + f.name + "' is the entity's join key");
      }
    }
    v.features.push_back(std::move(f));
  }
  RETURN_IF_ERROR(ReadSource(n, w, base_dir, &v.source));
  return v;
}

}  // namespace

Result<Definitions> Definitions::Parse(std::string_view yaml, const std::string& base_dir,
                                       std::string_view where) {
  ASSIGN_OR_RETURN(YAML::Node root, config::ParseYaml(yaml, where));
  const std::string w(where);
  if (!root.IsMap()) return FailedPrecondition(w + ": must be a mapping");
  RETURN_IF_ERROR(CheckKeys(root, w, {"project", "entities", "feature_views",
                                      "stream_feature_views", "feature_services"}));
  Definitions d;
  d.source_text_ = std::string(yaml);
  RETURN_IF_ERROR(Read(root, w, "project", &d.project_));
  RETURN_IF_ERROR(NameCheck(d.project_, w + ".project"));
  RETURN_IF_ERROR(ParseEntities(root["entities"], w, &d.entities_));
  const YAML::Node views = root["feature_views"];
  if (views && !views.IsSequence()) return FailedPrecondition(w + ".feature_views must be a list");
  for (size_t i = 0; views && i < views.size(); ++i) {
    ASSIGN_OR_RETURN(FeatureView v, ParseView(views[i], w + ".feature_views[" + std::to_string(i) +
                                                            "]", d.entities_, base_dir));
    if (d.FindView(v.name) != nullptr) {
      return FailedPrecondition(w + ": duplicate feature view '" + v.name + "'");
    }
    d.views_.push_back(std::move(v));
  }
  const YAML::Node streams = root["stream_feature_views"];
  if (streams && !streams.IsSequence()) {
    return FailedPrecondition(w + ".stream_feature_views must be a list");
  }
  for (size_t i = 0; streams && i < streams.size(); ++i) {
    const std::string sw = w + ".stream_feature_views[" + std::to_string(i) + "]";
    ASSIGN_OR_RETURN(FeatureView v, ParseStreamView(streams[i], sw, d.entities_, base_dir));
    RETURN_IF_ERROR(NameCheck(v.name, sw));
    if (d.FindView(v.name) != nullptr) {
      return FailedPrecondition(w + ": duplicate feature view '" + v.name + "'");
    }
    d.views_.push_back(std::move(v));
  }
  const YAML::Node services = root["feature_services"];
  for (size_t i = 0; services && i < services.size(); ++i) {
    const std::string sw = w + ".feature_services[" + std::to_string(i) + "]";
    RETURN_IF_ERROR(CheckKeys(services[i], sw, {"name", "features", "description"}));
    FeatureService s;
    std::vector<std::string> refs;
    RETURN_IF_ERROR(Read(services[i], sw, "name", &s.name));
    RETURN_IF_ERROR(NameCheck(s.name, sw));
    RETURN_IF_ERROR(Read(services[i], sw, "features", &refs));
    if (refs.empty()) return FailedPrecondition(sw + ".features: at least one reference");
    for (const std::string& r : refs) {
      if (r.find(':') == std::string::npos) {  // a whole view
        const int vi = d.ViewIndex(r);
        if (vi < 0) return FailedPrecondition(sw + ": unknown feature view '" + r + "'");
        for (size_t f = 0; f < d.views_[vi].features.size(); ++f) {
          s.features.push_back({vi, static_cast<int>(f)});
        }
        continue;
      }
      auto ref = d.ResolveRef(r);
      if (!ref.ok()) return FailedPrecondition(sw + ": " + ref.status().message());
      s.features.push_back(*ref);
    }
    if (d.FindService(s.name) != nullptr) {
      return FailedPrecondition(sw + ": duplicate feature service '" + s.name + "'");
    }
    d.services_.push_back(std::move(s));
  }
  char hash[17];
  std::snprintf(hash, sizeof(hash), "%016llx",
                static_cast<unsigned long long>(Fnv1a64(YAML::Dump(root))));
  d.version_hash_ = hash;
  return d;
}

Result<Definitions> Definitions::Load(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return FailedPrecondition("cannot read '" + path + "'");
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) text.append(buf, n);
  std::fclose(f);
  return Parse(text, config::DirName(path), path);
}

const FeatureView* Definitions::FindView(std::string_view name) const {
  const int i = ViewIndex(name);
  return i < 0 ? nullptr : &views_[i];
}

int Definitions::ViewIndex(std::string_view name) const {
  for (size_t i = 0; i < views_.size(); ++i) {
    if (views_[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

const FeatureView* Definitions::FindPushTarget(std::string_view name) const {
  for (const FeatureView& v : views_) {
    if (v.aggregation != nullptr) continue;  // fed by its topic only
    if (v.name == name || (!v.push_source.empty() && v.push_source == name)) return &v;
  }
  return nullptr;
}

const FeatureService* Definitions::FindService(std::string_view name) const {
  for (const FeatureService& s : services_) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

Result<FeatureRef> Definitions::ResolveRef(std::string_view ref) const {
  const size_t colon = ref.find(':');
  if (colon == std::string_view::npos) {
    return InvalidArgument("feature reference '" + std::string(ref) +
                               "' must be view:feature",
                           "unknown_feature");
  }
  const int vi = ViewIndex(ref.substr(0, colon));
  if (vi < 0) {
    return NotFound("unknown feature view '" + std::string(ref.substr(0, colon)) + "'",
                    "unknown_feature_view");
  }
  const int fi = views_[vi].FeatureIndex(ref.substr(colon + 1));
  if (fi < 0) {
    return InvalidArgument("feature view '" + views_[vi].name + "' has no feature '" +
                               std::string(ref.substr(colon + 1)) + "'",
                           "unknown_feature");
  }
  return FeatureRef{vi, fi};
}

std::string Definitions::RefName(FeatureRef ref) const {
  return views_[ref.view].name + ":" + views_[ref.view].features[ref.feature].name;
}

std::string Definitions::ToJson() const {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("project").String(project_).Key("version_hash").String(version_hash_);
  w.Key("entities").BeginArray();
  for (const Entity& e : entities_) {
    w.BeginObject().Key("name").String(e.name).Key("join_key").String(e.join_key);
    w.Key("dtype").String(ValueTypeName(e.dtype)).EndObject();
  }
  w.EndArray().Key("feature_views").BeginArray();
  for (const FeatureView& v : views_) {
    w.BeginObject().Key("name").String(v.name).Key("entities").BeginArray();
    for (int e : v.entities) w.String(entities_[e].name);
    w.EndArray().Key("features").BeginArray();
    for (const Feature& f : v.features) {
      w.BeginObject().Key("name").String(f.name).Key("dtype").String(ValueTypeName(f.dtype));
      w.EndObject();
    }
    w.EndArray().Key("ttl_seconds").Int(v.ttl_seconds).Key("online").Bool(v.online);
    if (!v.source.path.empty()) w.Key("source").String(v.source.path);
    if (!v.source.kafka_topic.empty()) w.Key("kafka_topic").String(v.source.kafka_topic);
    if (v.aggregation != nullptr) {
      w.Key("stream").Bool(true).Key("timestamp_field").String(v.source.timestamp_field);
      w.Key("allowed_lateness_s").Int(v.aggregation->allowed_lateness_us / 1000000);
    }
    w.EndObject();
  }
  w.EndArray().Key("feature_services").BeginArray();
  for (const FeatureService& s : services_) {
    w.BeginObject().Key("name").String(s.name).Key("features").BeginArray();
    for (FeatureRef r : s.features) w.String(RefName(r));
    w.EndArray().EndObject();
  }
  w.EndArray().EndObject();
  return out;
}

}  // namespace rtml::features
