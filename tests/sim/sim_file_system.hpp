// sim_file_system.hpp: a simulated disk for the replication layer's
// storage code (replication/file_system.hpp), with the faults a real disk
// has.
//
// What it models:
//   - durability: a write is durable only after sync_data on its file; a
//     created, renamed or removed name only after sync_dir on its
//     directory. `crash()` keeps what was durable and, of every write that
//     was not, a random subset of its 512-byte sectors (a torn write), and
//     of every unsynced directory change, a random subset (in no order).
//   - faults: EIO from a write or a sync with a set probability, ENOSPC past
//     a capacity, and `flip_bit` (a bit of a file's durable content flips).
// Files are inodes shared by names and open handles: a removed file stays
// readable through a handle opened before (as on POSIX).
//
// Threads: single-threaded (the simulation). Ownership: the file system owns
// the inodes; File handles share them. Randomness comes from the caller's
// generator, so a run replays from its seed.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "replication/file_system.hpp"

namespace mailbox::sim {

class SimFileSystem final : public FileSystem {
 public:
  // `random(n)` returns a number in [0, n).
  explicit SimFileSystem(std::function<uint64_t(uint64_t)> random);

  IoStatus open(const std::string& path, OpenMode mode, std::unique_ptr<File>* file) override;
  IoStatus rename(const std::string& from, const std::string& to) override;
  IoStatus remove(const std::string& path) override;
  IoStatus sync_dir(const std::string& dir) override;
  IoStatus list(const std::string& dir, std::vector<std::string>* names) override;
  IoStatus make_dir(const std::string& dir) override;
  bool exists(const std::string& path) override;
  bool is_directory(const std::string& path) override;
  IoStatus free_bytes(const std::string& dir, uint64_t* bytes) override;

  // Faults.
  void set_error_rates(unsigned write_error_per_mille, unsigned sync_error_per_mille) {
    write_error_per_mille_ = write_error_per_mille;
    sync_error_per_mille_ = sync_error_per_mille;
  }
  void set_capacity(uint64_t bytes) { capacity_bytes_ = bytes; }
  uint64_t used_bytes() const;
  // A power loss: undurable writes and directory changes are lost, each in
  // part at random. Open handles become invalid (their operations fail).
  void crash();
  // Flips one bit of the durable content of the file at `path` at `offset`
  // (and of what reads see). False when no such file or offset.
  bool flip_bit(const std::string& path, uint64_t offset, unsigned bit);
  // Every file's path (for choosing one to damage).
  std::vector<std::string> files() const;
  uint64_t file_size(const std::string& path) const;
  // Counters of injected faults, for reports.
  uint64_t injected_errors() const { return injected_errors_; }

  struct Inode {
    std::string current;  // what reads see
    std::string durable;  // what survives a crash
    // Byte ranges written since the last sync (offset, length).
    std::vector<std::pair<uint64_t, uint64_t>> unsynced;
    bool size_unsynced = false;
  };

 private:
  friend class SimFile;
  struct Directory {
    std::map<std::string, std::shared_ptr<Inode>> current;
    std::map<std::string, std::shared_ptr<Inode>> durable;
    bool durable_exists = false;
  };
  static std::pair<std::string, std::string> split(const std::string& path);
  Directory* directory(const std::string& dir);
  bool inject(unsigned per_mille);

  std::function<uint64_t(uint64_t)> random_;
  std::map<std::string, Directory> dirs_;
  uint64_t generation_ = 1;  // bumped by crash(): older handles are dead
  unsigned write_error_per_mille_ = 0;
  unsigned sync_error_per_mille_ = 0;
  uint64_t capacity_bytes_ = UINT64_MAX;
  uint64_t injected_errors_ = 0;
};

}  // namespace mailbox::sim
