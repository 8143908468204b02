// The Scorer's fallback answers (the policy is pipeline/fallback.h).
#include "pipeline/fallback.h"

#include "pipeline/scorer.h"

namespace rtml::pipeline {
using model::ModelVersion;

std::optional<int> FallbackReason(const Status& s) {
  switch (s.code()) {
    case StatusCode::kUnavailable: return 0;
    case StatusCode::kDeadlineExceeded: return 1;
    case StatusCode::kInternal: return 2;
    default: return std::nullopt;  // the request's own fault, or no failure
  }
}

Status Scorer::AnswerFallback(const ModelVersion& v, Path path, const Payload& request,
                              const Status& failed, Decoded* d, ScoreScratch* scratch,
                              std::string* response) const {
  const std::optional<int> reason = FallbackReason(failed);
  if (!v.spec.fallback || !reason) return failed;
  const model::FallbackSpec& f = *v.spec.fallback;
  if (!f.version) {
    d->fallback_reason = *reason;
    request.codec->WriteConstant(v, *d, f.values, response);
    scratch->fell_back = true;
    return Status::Ok();
  }
  auto cannot = [&](const std::string& why) {
    return Status(failed.code(),
                  failed.message() + "; its fallback, version " + std::to_string(*f.version) +
                      ", " + why,
                  std::string(failed.reason()), std::string(failed.field()));
  };
  const model::ModelEntry* e =
      scratch->snapshot.repo != nullptr ? scratch->snapshot.repo->Find(v.name) : nullptr;
  const ModelVersion* fb = e != nullptr ? e->Get(*f.version) : nullptr;
  if (fb == nullptr) return cannot("is not loaded");
  // The fallback reads no stored features (the store may be why the version
  // could not answer) and is not cut by the deadline: one model call.
  Decoded fd;
  fd.route = d->route;
  fd.lenient = true;  // the request was valid for v; what fb does not take is not an error
  if (Status s = Decode(*fb, request, scratch, &fd); !s.ok()) {
    return cannot("cannot read the request: " + s.message());
  }
  if (Status s = FinishRows(*fb, fd, scratch); !s.ok()) {
    return cannot("cannot score it without the feature store: " + s.message());
  }
  if (Status s = Predict(*fb, MetricsFor(*fb), path, fd.n_rows, scratch); !s.ok()) {
    return cannot("failed too: " + s.message());
  }
  fd.fallback_reason = d->fallback_reason = *reason;
  WriteAnswer(*fb, fd, request, *scratch, response, v.version);
  d->answer_header_size = fd.answer_header_size;
  scratch->fell_back = true;
  return Status::Ok();
}

}  // namespace rtml::pipeline
