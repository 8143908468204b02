#include "model/xgboost_json.h"

#include <simdjson.h>

#include <charconv>
#include <fstream>
#include <sstream>

namespace rtml::model {
namespace od = simdjson::ondemand;

namespace {

Status JsonError(std::string_view where, simdjson::error_code e) {
  return FailedPrecondition("XGBoost model JSON: " + std::string(where) + ": " +
                            simdjson::error_message(e));
}

// Reads a number token exactly as float (no double rounding).
Result<float> ParseFloat(std::string_view token, std::string_view where) {
  while (!token.empty() && (token.back() == ' ' || token.back() == '\n' ||
                            token.back() == '\r' || token.back() == '\t')) {
    token.remove_suffix(1);
  }
  if (!token.empty() && token.front() == '"') {  // XGBoost writes some numbers as strings
    token.remove_prefix(1);
    if (!token.empty() && token.back() == '"') token.remove_suffix(1);
  }
  float v = 0;
  auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), v);
  if (ec != std::errc() || end != token.data() + token.size()) {
    return FailedPrecondition("XGBoost model JSON: " + std::string(where) +
                              ": not a number: '" + std::string(token) + "'");
  }
  return v;
}

Result<int> ParseIntString(std::string_view token, std::string_view where) {
  int v = 0;
  auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), v);
  if (ec != std::errc() || end != token.data() + token.size()) {
    return FailedPrecondition("XGBoost model JSON: " + std::string(where) +
                              ": not an integer: '" + std::string(token) + "'");
  }
  return v;
}

// Reads an integer array field; an absent optional field leaves `out` empty.
template <typename T>
Status ReadIntArray(od::object& obj, const char* key, std::vector<T>* out,
                    bool required = true) {
  od::array arr;
  auto e = obj.find_field_unordered(key).get_array().get(arr);
  if (e == simdjson::NO_SUCH_FIELD && !required) return Status::Ok();
  if (e) return JsonError(key, e);
  for (auto v : arr) {
    int64_t x;
    if (auto e = v.get_int64().get(x)) return JsonError(key, e);
    out->push_back(static_cast<T>(x));
  }
  return Status::Ok();
}

Status ReadFloatArray(od::object& obj, const char* key, std::vector<float>* out) {
  od::array arr;
  if (auto e = obj.find_field_unordered(key).get_array().get(arr)) return JsonError(key, e);
  for (auto v : arr) {
    std::string_view token;
    if (auto e = v.raw_json_token().get(token)) return JsonError(key, e);
    ASSIGN_OR_RETURN(float x, ParseFloat(token, key));
    out->push_back(x);
  }
  return Status::Ok();
}

Result<std::string_view> ReadString(od::object& obj, const char* key) {
  std::string_view s;
  if (auto e = obj.find_field_unordered(key).get_string().get(s)) return JsonError(key, e);
  return s;
}

Status ReadTree(od::object tree, size_t index, TreeNodes* out) {
  const std::string where = "trees[" + std::to_string(index) + "]";
  RETURN_IF_ERROR(ReadIntArray(tree, "left_children", &out->left).Annotate(where));
  RETURN_IF_ERROR(ReadIntArray(tree, "right_children", &out->right).Annotate(where));
  RETURN_IF_ERROR(ReadIntArray(tree, "split_indices", &out->feature).Annotate(where));
  RETURN_IF_ERROR(ReadFloatArray(tree, "split_conditions", &out->value).Annotate(where));
  RETURN_IF_ERROR(ReadIntArray(tree, "default_left", &out->default_left).Annotate(where));
  std::vector<int> split_type;
  RETURN_IF_ERROR(ReadIntArray(tree, "split_type", &split_type, false).Annotate(where));
  if (!split_type.empty() && split_type.size() != out->left.size()) {
    return FailedPrecondition(where + ": split_type has " + std::to_string(split_type.size()) +
                              " entries for " + std::to_string(out->left.size()) + " nodes");
  }
  for (size_t i = 0; i < split_type.size(); ++i) {
    if (split_type[i] != 0 && out->left[i] != -1) {
      return FailedPrecondition(where + " node " + std::to_string(i) +
                                ": categorical splits are not supported by the native "
                                "backend; use backend: xgboost");
    }
  }
  od::object param;
  if (auto e = tree.find_field_unordered("tree_param").get_object().get(param)) {
    return JsonError(where + ".tree_param", e);
  }
  auto leaf_vec = param.find_field_unordered("size_leaf_vector").get_string();
  if (!leaf_vec.error()) {
    ASSIGN_OR_RETURN(int n, ParseIntString(leaf_vec.value_unsafe(), "size_leaf_vector"));
    if (n > 1) {
      return FailedPrecondition(where + ": vector leaves (multi_strategy) are not supported");
    }
  }
  return Status::Ok();
}

struct LearnerParams {
  std::string objective;
  int num_features = 0;
  int num_class = 0;
  std::vector<float> base_score;
};

Status ReadLearnerParams(od::object learner, LearnerParams* p) {
  od::object mp;
  if (auto e = learner.find_field_unordered("learner_model_param").get_object().get(mp)) {
    return JsonError("learner.learner_model_param", e);
  }
  ASSIGN_OR_RETURN(std::string_view base, ReadString(mp, "base_score"));
  ASSIGN_OR_RETURN(p->base_score, ParseBaseScore(base));
  ASSIGN_OR_RETURN(std::string_view nc, ReadString(mp, "num_class"));
  ASSIGN_OR_RETURN(p->num_class, ParseIntString(nc, "num_class"));
  ASSIGN_OR_RETURN(std::string_view nf, ReadString(mp, "num_feature"));
  ASSIGN_OR_RETURN(p->num_features, ParseIntString(nf, "num_feature"));
  auto nt = mp.find_field_unordered("num_target").get_string();
  if (!nt.error()) {
    ASSIGN_OR_RETURN(int targets, ParseIntString(nt.value_unsafe(), "num_target"));
    if (targets > 1) return FailedPrecondition("multi-target models are not supported");
  }
  od::object obj;
  if (auto e = learner.find_field_unordered("objective").get_object().get(obj)) {
    return JsonError("learner.objective", e);
  }
  ASSIGN_OR_RETURN(std::string_view name, ReadString(obj, "name"));
  p->objective = std::string(name);
  return Status::Ok();
}

// Reads gradient_booster: gbtree, or dart (a gbtree plus per-tree weights).
Status ReadBooster(od::object booster, TreeEnsembleDef* def) {
  ASSIGN_OR_RETURN(std::string_view name, ReadString(booster, "name"));
  od::object gbtree = booster;
  std::vector<float> weights;
  if (name == "dart") {
    if (auto e = booster.find_field_unordered("gbtree").get_object().get(gbtree)) {
      return JsonError("gradient_booster.gbtree", e);
    }
  } else if (name != "gbtree") {
    return FailedPrecondition("booster '" + std::string(name) +
                              "' is not supported (only gbtree and dart)");
  }
  od::object model;
  if (auto e = gbtree.find_field_unordered("model").get_object().get(model)) {
    return JsonError("gradient_booster.model", e);
  }
  od::array trees;
  if (auto e = model.find_field_unordered("trees").get_array().get(trees)) {
    return JsonError("model.trees", e);
  }
  for (auto t : trees) {
    od::object tree;
    if (auto e = t.get_object().get(tree)) return JsonError("model.trees[]", e);
    def->trees.emplace_back();
    RETURN_IF_ERROR(ReadTree(tree, def->trees.size() - 1, &def->trees.back()));
  }
  std::vector<int> tree_info;
  RETURN_IF_ERROR(ReadIntArray(model, "tree_info", &tree_info));
  if (tree_info.size() != def->trees.size()) {
    return FailedPrecondition("tree_info has " + std::to_string(tree_info.size()) +
                              " entries for " + std::to_string(def->trees.size()) + " trees");
  }
  for (size_t i = 0; i < tree_info.size(); ++i) def->trees[i].group = tree_info[i];
  if (name == "dart") {
    RETURN_IF_ERROR(ReadFloatArray(booster, "weight_drop", &weights));
    if (weights.size() != def->trees.size()) {
      return FailedPrecondition("dart weight_drop has " + std::to_string(weights.size()) +
                                " entries for " + std::to_string(def->trees.size()) + " trees");
    }
    for (size_t i = 0; i < weights.size(); ++i) def->trees[i].weight = weights[i];
  }
  return Status::Ok();
}

}  // namespace

Result<std::vector<float>> ParseBaseScore(std::string_view text) {
  std::vector<float> out;
  if (!text.empty() && text.front() == '[') {
    if (text.back() != ']') return FailedPrecondition("base_score: unterminated list");
    text = text.substr(1, text.size() - 2);
  }
  while (!text.empty()) {
    size_t comma = text.find(',');
    ASSIGN_OR_RETURN(float v, ParseFloat(text.substr(0, comma), "base_score"));
    out.push_back(v);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  if (out.empty()) return FailedPrecondition("base_score is empty");
  return out;
}

Result<TreeEnsembleDef> ParseXgboostJson(std::string_view json) {
  simdjson::padded_string padded(json);
  // On-demand reading cannot carry on safely past malformed JSON (a fuzzer
  // found it reading through a null parser after skipping a bad optional
  // field): check the whole document first. A model loads once; this is
  // not on a request path.
  {
    simdjson::dom::parser validator;
    if (auto e = validator.parse(padded).error()) return JsonError("document", e);
  }
  od::parser parser;
  od::document doc;
  if (auto e = parser.iterate(padded).get(doc)) return JsonError("document", e);
  od::object learner;
  if (auto e = doc.find_field_unordered("learner").get_object().get(learner)) {
    return JsonError("learner (is this an XGBoost JSON model?)", e);
  }
  LearnerParams params;
  TreeEnsembleDef def;
  od::array names;
  // Optional; any other error leaves the document unusable (a fuzzer found
  // that carrying on read through a null parser).
  const auto has_names = learner.find_field_unordered("feature_names").get_array().get(names);
  if (has_names != simdjson::SUCCESS && has_names != simdjson::NO_SUCH_FIELD) {
    return JsonError("learner.feature_names", has_names);
  }
  if (has_names == simdjson::SUCCESS) {
    for (auto n : names) {
      std::string_view name;
      if (auto e = n.get_string().get(name)) return JsonError("learner.feature_names", e);
      def.feature_names.emplace_back(name);
    }
  }
  // learner's fields are read in file order: attributes, feature_names, ...,
  // gradient_booster, learner_model_param, objective.
  od::object booster;
  if (auto e = learner.find_field_unordered("gradient_booster").get_object().get(booster)) {
    return JsonError("learner.gradient_booster", e);
  }
  RETURN_IF_ERROR(ReadBooster(booster, &def));
  RETURN_IF_ERROR(ReadLearnerParams(learner, &params));
  def.objective = params.objective;
  def.num_features = params.num_features;
  def.num_groups = std::max(1, params.num_class);
  if (params.base_score.size() == 1) {
    def.base_margin.assign(def.num_groups,
                           BaseScoreToMargin(def.objective, params.base_score[0]));
  } else if (params.base_score.size() == static_cast<size_t>(def.num_groups)) {
    for (float b : params.base_score) {
      def.base_margin.push_back(BaseScoreToMargin(def.objective, b));
    }
  } else {
    return FailedPrecondition("base_score has " + std::to_string(params.base_score.size()) +
                              " values for " + std::to_string(def.num_groups) + " classes");
  }
  return def;
}

Result<TreeEnsembleDef> LoadXgboostJsonFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return FailedPrecondition("cannot read model file '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  auto def = ParseXgboostJson(ss.str());
  if (!def.ok()) return def.status().Annotate(path);
  return def;
}

}  // namespace rtml::model
