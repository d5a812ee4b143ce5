// libFuzzer target: the snapshot readers. The first byte picks one:
//   even: the state machine's snapshot decoder (StateMachine::restore), run
//         on the data of every snapshot a node loads or installs;
//   odd:  the snapshot file reader (replication/snapshot_store.hpp: header,
//         configuration, checksum), over an in-memory file system.
//
// Checked: nothing crashes or trips a sanitizer; a refused snapshot leaves
// the state unchanged; an accepted one serializes to a snapshot that
// restores to a state with the same digest.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/state_machine.hpp"
#include "replication/snapshot_store.hpp"
#include "tests/sim/sim_file_system.hpp"

namespace {
void fuzz_state(std::string_view bytes) {
  using namespace mailbox;
  StateMachine state;
  const uint64_t empty_digest = state.digest();
  if (!state.restore(bytes)) {
    if (state.digest() != empty_digest) std::abort();  // a refusal changes nothing
    return;
  }
  const std::string again = state.serialize();
  StateMachine copy;
  if (!copy.restore(again)) std::abort();
  if (copy.digest() != state.digest()) std::abort();
}

void fuzz_file(std::string_view bytes) {
  using namespace mailbox;
  // No faults are set: the random source only picks torn sectors at a crash.
  sim::SimFileSystem fs([](uint64_t bound) { return bound == 0 ? 0 : bound - 1; });
  fs.make_dir("/s");
  std::unique_ptr<File> file;
  if (!fs.open("/s/snap", OpenMode::kCreateExclusive, &file).is_ok()) std::abort();
  if (!file->write_at(0, bytes.data(), bytes.size()).is_ok()) std::abort();
  file.reset();
  SnapshotReader reader(fs, "/s/snap");
  if (!reader.open().is_ok()) return;
  if (!reader.verify().is_ok()) return;
  std::string data;
  if (reader.read_data(&data).is_ok()) fuzz_state(data);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    fuzz_state(rest);
  } else {
    fuzz_file(rest);
  }
  return 0;
}
