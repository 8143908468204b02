#include "resilience/admission.h"

#include <gtest/gtest.h>

namespace rtml::resilience {
namespace {

const AdmissionLimits kLimits{.max_queue_ms = 20, .max_queue_rows = 1000};

TEST(AdmissionTest, AdmitsIntoAnEmptyQueueWhateverItsSize) {
  EXPECT_EQ(Admit(kLimits, {}, {.rows = 5000, .service_ms = 40}).verdict, Verdict::kAdmit);
}

TEST(AdmissionTest, RefusesOnceTheOldestRequestHasWaitedTheBudget) {
  const LoopLoad behind{.oldest_wait_ms = 25, .queued_ms = 3, .queued_rows = 10};
  const Admission a = Admit(kLimits, behind, {.rows = 1, .service_ms = 0.01});
  EXPECT_EQ(a.verdict, Verdict::kBehind);
  EXPECT_EQ(a.retry_after_s, 1);
  const LoopLoad fine{.oldest_wait_ms = 19, .queued_ms = 3, .queued_rows = 10};
  EXPECT_EQ(Admit(kLimits, fine, {.rows = 1}).verdict, Verdict::kAdmit);
}

TEST(AdmissionTest, AnOldHeadServedNextIsAPauseNotABacklog) {
  // The loop was away for 25 ms (descheduled) and is back to serve its own
  // queue first: what newcomers will wait is what is queued, 3 ms.
  LoopLoad paused{.oldest_wait_ms = 25, .queued_ms = 3, .queued_rows = 10, .served_next = true};
  EXPECT_EQ(Admit(kLimits, paused, {.rows = 1}).verdict, Verdict::kAdmit);
  paused.queued_ms = 21;  // a real backlog is refused all the same
  const Admission a = Admit(kLimits, paused, {.rows = 1});
  EXPECT_EQ(a.verdict, Verdict::kBehind);
  EXPECT_NE(RefusalStatus(a, kLimits, paused, {}).message().find("21.0 ms"), std::string::npos);
}

TEST(AdmissionTest, SmallWorkStaysOnTheLoopAndBigWorkGoesToItsScorer) {
  EXPECT_EQ(PlaceWork({.rows = 1, .service_ms = 0.015}), Lane::kLoop);
  EXPECT_EQ(PlaceWork({.rows = 16, .service_ms = kMaxInlineMs / 2}), Lane::kLoop);
  EXPECT_EQ(PlaceWork({.rows = 128, .service_ms = kMaxInlineMs}), Lane::kScorer);
  EXPECT_EQ(PlaceWork({.rows = 1024, .service_ms = 4, .budget_ms = 1}), Lane::kScorer);
}

TEST(AdmissionTest, RefusesWhenTheQueuedWorkWouldTakeTheBudget) {
  // Nothing has waited long yet, but what is queued will take 30 ms.
  const LoopLoad load{.oldest_wait_ms = 1, .queued_ms = 30, .queued_rows = 10};
  EXPECT_EQ(Admit(kLimits, load, {.rows = 1}).verdict, Verdict::kBehind);
}

TEST(AdmissionTest, RetryAfterGrowsWithTheBacklogInWholeSeconds) {
  const LoopLoad load{.oldest_wait_ms = 2500, .queued_ms = 100, .queued_rows = 10};
  EXPECT_EQ(Admit(kLimits, load, {}).retry_after_s, 3);
}

TEST(AdmissionTest, RefusesRowsPastTheBound) {
  const LoopLoad load{.oldest_wait_ms = 1, .queued_ms = 1, .queued_rows = 900};
  EXPECT_EQ(Admit(kLimits, load, {.rows = 100}).verdict, Verdict::kAdmit);
  const Admission a = Admit(kLimits, load, {.rows = 101});
  EXPECT_EQ(a.verdict, Verdict::kFull);
  EXPECT_GE(a.retry_after_s, 1);
}

TEST(AdmissionTest, ZeroLimitsBoundNothing) {
  const AdmissionLimits none{.max_queue_ms = 0, .max_queue_rows = 0};
  const LoopLoad load{.oldest_wait_ms = 1e6, .queued_ms = 1e6, .queued_rows = 1 << 30};
  EXPECT_EQ(Admit(none, load, {.rows = 1 << 20}).verdict, Verdict::kAdmit);
}

TEST(AdmissionTest, RefusesWorkThatCannotMeetItsDeadline) {
  const LoopLoad load{.oldest_wait_ms = 2, .queued_ms = 8, .queued_rows = 100};
  EXPECT_EQ(Admit(kLimits, load, {.rows = 1, .service_ms = 1, .budget_ms = 10}).verdict,
            Verdict::kAdmit);
  const Admission a = Admit(kLimits, load, {.rows = 1, .service_ms = 1, .budget_ms = 5});
  EXPECT_EQ(a.verdict, Verdict::kDeadline);
  EXPECT_EQ(a.retry_after_s, 0);
  // Even alone: its own service time does not fit.
  EXPECT_EQ(Admit(kLimits, {}, {.rows = 1000, .service_ms = 6, .budget_ms = 5}).verdict,
            Verdict::kDeadline);
}

TEST(AdmissionTest, OverloadIsReportedBeforeTheDeadline) {
  const LoopLoad load{.oldest_wait_ms = 50, .queued_ms = 50, .queued_rows = 100};
  EXPECT_EQ(Admit(kLimits, load, {.rows = 1, .service_ms = 1, .budget_ms = 5}).verdict,
            Verdict::kBehind);
}

TEST(AdmissionTest, RefusalsNameTheirReasonAndStatus) {
  const LoopLoad load{.oldest_wait_ms = 30, .queued_ms = 30, .queued_rows = 1000};
  const Work work{.rows = 7, .service_ms = 1, .budget_ms = 2};
  Status behind = RefusalStatus({Verdict::kBehind, 1}, kLimits, load, work);
  EXPECT_EQ(behind.code(), StatusCode::kUnavailable);
  EXPECT_EQ(behind.reason(), "queue_wait");
  EXPECT_NE(behind.message().find("30.0 ms"), std::string::npos) << behind.message();
  Status full = RefusalStatus({Verdict::kFull, 1}, kLimits, load, work);
  EXPECT_EQ(full.reason(), "queue_full");
  EXPECT_NE(full.message().find("1000 rows"), std::string::npos) << full.message();
  Status late = RefusalStatus({Verdict::kDeadline, 0}, kLimits, load, work);
  EXPECT_EQ(late.code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(late.reason(), "deadline_exceeded");
}

TEST(LoadEstimatorTest, TheFirstRequestReplacesThePriors) {
  LoadEstimator e;
  e.Observe(/*body_bytes=*/36000, /*rows=*/1000, /*service_ms=*/10);
  EXPECT_EQ(e.Rows(36000), 1000);
  EXPECT_NEAR(e.ServiceMs(1000), 10, 1e-9);
  e.Observe(36000, 1000, 2);  // then each weighs 1/8
  EXPECT_NEAR(e.ServiceMs(1000), 9, 1e-9);
}

TEST(LoadEstimatorTest, LearnsBytesPerRowAndServiceTime) {
  LoadEstimator e;
  e.Observe(100, 1, 5);
  for (int i = 0; i < 200; ++i) e.Observe(/*body_bytes=*/64000, /*rows=*/1000, /*ms=*/2);
  EXPECT_EQ(e.Rows(64000), 1000);
  EXPECT_EQ(e.Rows(10), 1);  // never zero
  EXPECT_NEAR(e.ServiceMs(1000), 2, 0.01);
  e.Observe(0, 0, 5);  // a request that scored nothing teaches nothing
  EXPECT_NEAR(e.ServiceMs(1000), 2, 0.01);
}

TEST(WaitEstimatorTest, PredictsTheWaitAllButOneRequestInTwoHundredKeepTo) {
  WaitEstimator e;
  EXPECT_DOUBLE_EQ(e.WaitMs(10), 10);  // until a wait is seen
  // Waits of 1.2x to 2.19x the service queued ahead, evenly spread: the
  // 99.5th percentile is 2.19x.
  for (int i = 0; i < 20000; ++i) e.ObserveWait(/*queued_ahead_ms=*/10, 12 + (i * 37 % 100) * 0.1);
  EXPECT_NEAR(e.Stretch(), 2.19, 0.05);
  EXPECT_NEAR(e.WaitMs(20), 20 * e.Stretch(), 1e-9);
  const double settled = e.Stretch();
  e.ObserveWait(0.5, 50);  // too little queued ahead to tell
  e.ObserveWait(10, -1);   // a clock that went wrong
  EXPECT_DOUBLE_EQ(e.Stretch(), settled);
}

TEST(ParseTimeoutTest, AcceptsPositiveMillisecondsAndNamesTheHeaderOtherwise) {
  EXPECT_EQ(*ParseTimeoutMs("", "X-Request-Timeout-Ms"), std::nullopt);
  EXPECT_EQ(*ParseTimeoutMs(" 20 ", "X-Request-Timeout-Ms"), 20.0);
  EXPECT_EQ(*ParseTimeoutMs("2.5", "X-Request-Timeout-Ms"), 2.5);
  for (const char* bad : {"0", "-1", "abc", "10ms", "1e12", "nan"}) {
    auto r = ParseTimeoutMs(bad, "X-Request-Timeout-Ms");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().reason(), "bad_timeout");
    EXPECT_EQ(r.status().field(), "X-Request-Timeout-Ms");
  }
}

}  // namespace
}  // namespace rtml::resilience
