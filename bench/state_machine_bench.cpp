// Micro-benchmarks of the state machine (Google Benchmark): apply throughput
// and the cost of snapshots at 1M pending messages (the loop-thread stall).
#include <benchmark/benchmark.h>

#include "core/state_machine.hpp"

namespace mailbox {
namespace {

constexpr size_t kPayloadBytes = 1024;
constexpr size_t kBatchCommands = 256;

StateMachine& filled_state(size_t messages) {
  static StateMachine* state = nullptr;
  static size_t filled = 0;
  if (state == nullptr || filled != messages) {
    delete state;
    state = new StateMachine();
    const std::string payload(kPayloadBytes, 'x');
    for (size_t done = 0; done < messages; done += kBatchCommands) {
      Entry e;
      e.leader_time_ms = 1;
      for (size_t i = 0; i < kBatchCommands && done + i < messages; ++i) {
        e.commands.push_back(PutCommand{"bench", "zenoh/bytes", payload, 86'400'000, ""});
      }
      state->apply(e);
    }
    filled = messages;
  }
  return *state;
}

void BM_ApplyPutBatch(benchmark::State& st) {
  StateMachine sm;
  const std::string payload(kPayloadBytes, 'x');
  Entry e;
  e.leader_time_ms = 1;
  for (size_t i = 0; i < kBatchCommands; ++i) e.commands.push_back(PutCommand{"b", "zenoh/bytes", payload, 60'000, ""});
  Entry c;
  c.leader_time_ms = 1;
  c.commands.push_back(ConsumeCommand{"b", static_cast<uint32_t>(kBatchCommands), 0, ""});
  for (auto _ : st) {
    benchmark::DoNotOptimize(sm.apply(e));
    benchmark::DoNotOptimize(sm.apply(c));
  }
  st.SetItemsProcessed(static_cast<int64_t>(st.iterations() * kBatchCommands * 2));
}
BENCHMARK(BM_ApplyPutBatch);

void BM_SnapshotParts(benchmark::State& st) {
  StateMachine& sm = filled_state(static_cast<size_t>(st.range(0)));
  for (auto _ : st) {
    auto parts = sm.pin_snapshot();
    benchmark::DoNotOptimize(parts.head.data());
    sm.unpin_snapshot();
  }
}
BENCHMARK(BM_SnapshotParts)->Arg(100'000)->Arg(1'000'000)->Unit(benchmark::kMillisecond)->Iterations(3);

void BM_Restore(benchmark::State& st) {
  const std::string bytes = filled_state(static_cast<size_t>(st.range(0))).serialize();
  for (auto _ : st) {
    StateMachine sm;
    benchmark::DoNotOptimize(sm.restore(bytes));
  }
}
BENCHMARK(BM_Restore)->Arg(1'000'000)->Unit(benchmark::kMillisecond)->Iterations(2);

}  // namespace
}  // namespace mailbox

BENCHMARK_MAIN();
