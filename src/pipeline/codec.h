// Codec: a wire format as the Scorer sees it. A codec decodes a request's
// rows into the Scorer's row batch and writes the answer from its results;
// the Scorer validates (through the RowDecoder it hands over), enriches,
// routes and scores, and never parses a body itself. The codecs live in
// protocol/ (rtml's JSON, which is also the Kafka event; the Open Inference
// Protocol's JSON and binary tensors).
//
// Thread-safety: a Codec is stateless and shared by every thread; what one
// request needs between decoding and answering is in its DecodedBody.
// Ownership: a Payload borrows its bytes and codec, which must outlive the
// request (codecs are static).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/status.h"
#include "model/repository.h"
#include "schema/schema.h"

namespace rtml::pipeline {

class Codec;
struct ScoreScratch;

// One request as its wire format carries it.
struct Payload {
  const Codec* codec = nullptr;
  std::string_view bytes;
  // What the transport knows of the bytes that the bytes do not say (the
  // V2 binary extension: the JSON header's length; 0: all JSON).
  uint64_t header_size = 0;
  // What the transport already parsed of the bytes, in the codec's own type
  // (the gRPC codec's: the ModelInferRequest gRPC handed over), so that the
  // codec need not parse them again; null: the codec parses the bytes.
  const void* parsed = nullptr;
};

// One request body's rows within a ScoreScratch, and what its answer needs:
// set by the codec's Decode (rows, id, shape) and by the Scorer's stages.
struct DecodedBody {
  size_t first_row = 0;
  size_t n_rows = 0;
  bool batch = false;
  bool flat = false;  // the body was the row itself
  bool degraded = false;
  int64_t read_at_us = 0;  // when its stored features are read (0: now)
  std::string_view route;  // why this version answers ("default", "traffic", a label, ...)
  std::string id;  // raw JSON of "id", if given
  Status status;   // set by the batch stages after decoding
  bool lenient = false;     // fields the version does not know are ignored (a fallback's decode)
  int fallback_reason = -1;  // answered by the fallback: index into kFallbackReasons
  uint32_t outputs = ~0u;    // which of its outputs the answer carries (a codec's bits)
  uint32_t binary_outputs = 0;  // which of them as raw bytes after a JSON header
  uint64_t answer_header_size = 0;  // set by the codec: that header's bytes (0: all JSON)
  // A deadline the body gives (V2's parameters.timeout_ms), counted from
  // `received` (set by the Scorer; the epoch: now): the request's is the
  // sooner of it and the transport's.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  std::chrono::steady_clock::time_point received{};
};

// Where a codec writes one body's rows: the Scorer's buffers, for the
// version's inputs and entity keys. Resize(n) says the body has n rows (so
// far); At(i) is the body's i-th row, valid until the next Resize.
class RowSink {
 public:
  struct Row {
    std::span<float> values;
    std::span<schema::Cell> cells;
    std::span<std::string> keys;
  };
  RowSink(const model::ModelVersion& v, const schema::RowDecoder& decoder,
          std::span<const schema::KeySpec> keys, size_t max_rows, size_t first_row,
          ScoreScratch& scratch)
      : version(v), decoder(decoder), keys(keys), max_rows(max_rows), scratch(scratch),
        first_row_(first_row) {}
  void Resize(size_t n);
  Row At(size_t i);  // REQUIRES: i < the last Resize's n

  const model::ModelVersion& version;
  const schema::RowDecoder& decoder;        // validates each value, as every format must
  std::span<const schema::KeySpec> keys;    // the entity keys a row may carry (Row::keys)
  const size_t max_rows;                    // scoring.max_batch_size
  ScoreScratch& scratch;  // its JSON parser and padded buffer are the codec's to use

 private:
  size_t first_row_;
};

class Codec {
 public:
  virtual ~Codec() = default;
  virtual std::string_view name() const = 0;
  // The hashed value of the routing key `key` (a serving policy's sticky
  // key) in the request, or nullopt when it has none (or is unreadable:
  // Decode will say why).
  virtual std::optional<uint64_t> StickyKey(const Payload& p, std::string_view key,
                                            ScoreScratch& scratch) const = 0;
  // Decodes the request's rows into `rows` (d->n_rows of them), with the
  // request's id and what its answer must look like in *d. Every value goes
  // through rows.decoder, so validation is the same in every format.
  virtual Status Decode(const Payload& p, RowSink& rows, DecodedBody* d) const = 0;
  // The answer to a scored request (the codec may note in d how it wrote
  // it: answer_header_size): scratch.outputs (d's rows, from
  // d.first_row), what each input was (scratch.cells) and, for the inputs
  // in `stored` (schema columns read from the store; null: none), why a
  // stored value was not used (scratch.statuses). `fallback_from`: the
  // version whose fallback v is (0: v answered itself).
  virtual void WriteAnswer(const model::ModelVersion& v, DecodedBody& d,
                           const ScoreScratch& scratch, const std::vector<int>* stored,
                           int64_t fallback_from, std::string* out) const = 0;
  // The answer of a constant fallback: `values` (one row of outputs) for
  // every row of d.
  virtual void WriteConstant(const model::ModelVersion& v, DecodedBody& d,
                             std::span<const float> values, std::string* out) const = 0;
  // The request as the prediction log keeps it (JSON text), and the answer
  // (`answer`, as WriteAnswer wrote it for d).
  virtual std::string_view LogText(const Payload& p) const { return p.bytes; }
  virtual std::string_view LogAnswer(std::string_view answer, const DecodedBody& d) const {
    return d.answer_header_size > 0 ? answer.substr(0, d.answer_header_size) : answer;
  }
};

}  // namespace rtml::pipeline
