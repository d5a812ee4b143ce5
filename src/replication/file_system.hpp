// file_system.hpp: the file operations the replication layer's storage uses.
//
// What it is for: the log store and the snapshot store (log_store.hpp,
// snapshot_store.hpp) do all their I/O through this interface, so the same
// production code runs on the real disk (PosixFileSystem) and on the
// simulation's faulty disk (tests/sim: lost unsynced writes at a crash,
// torn writes, bit flips, EIO, ENOSPC).
//
// Durability contract (what the stores rely on, and what the simulated disk
// enforces): data written to a file is durable only after `sync_data` on
// that file returned ok; a created, renamed or removed directory entry is
// durable only after `sync_dir` on its directory returned ok. A crash may
// lose any undurable write, in whole or in part.
//
// Threads: a FileSystem may be used from several threads at once; a File
// from one thread at a time. Ownership: `open` hands the caller the File;
// the caller closes it by destroying it.
#pragma once

#include <cerrno>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mailbox {

// The outcome of a file operation: ok, or an errno value (EIO, ENOSPC,
// ENOENT, ...) with what was being done, for a log line or an error reply.
struct IoStatus {
  int error = 0;
  std::string context;

  static IoStatus ok() { return {}; }
  static IoStatus failed(int error_number, std::string what) { return {error_number, std::move(what)}; }
  bool is_ok() const { return error == 0; }
  bool is_no_space() const { return error == ENOSPC || error == EDQUOT; }
  // "<context>: <strerror>"
  std::string message() const;
};

class File {
 public:
  virtual ~File() = default;
  // Writes all of `data` at `offset` (extending the file if needed).
  virtual IoStatus write_at(uint64_t offset, const void* data, size_t length) = 0;
  // Reads up to `length` bytes at `offset`; `*read` is less at the end.
  virtual IoStatus read_at(uint64_t offset, void* data, size_t length, size_t* read) = 0;
  // Makes every write so far durable (fdatasync).
  virtual IoStatus sync_data() = 0;
  virtual IoStatus size(uint64_t* bytes) = 0;
  // Sets the size, dropping or zero-extending the tail (not durable until
  // sync_data).
  virtual IoStatus truncate(uint64_t bytes) = 0;
  // The file's name as opened, for messages.
  virtual const std::string& path() const = 0;
};

enum class OpenMode {
  kRead,            // an existing file, read only
  kReadWrite,       // an existing file
  kCreateExclusive  // a new file (fails if it exists), read and write
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;
  virtual IoStatus open(const std::string& path, OpenMode mode, std::unique_ptr<File>* file) = 0;
  virtual IoStatus rename(const std::string& from, const std::string& to) = 0;
  virtual IoStatus remove(const std::string& path) = 0;
  // Makes the directory's entries durable (fsync of the directory).
  virtual IoStatus sync_dir(const std::string& dir) = 0;
  // The names (not paths) of the entries of `dir`, sorted.
  virtual IoStatus list(const std::string& dir, std::vector<std::string>* names) = 0;
  // Creates `dir` if missing (its parent must exist); ok if it exists.
  virtual IoStatus make_dir(const std::string& dir) = 0;
  virtual bool exists(const std::string& path) = 0;
  virtual bool is_directory(const std::string& path) = 0;
  // Bytes a new file in `dir` may still grow by.
  virtual IoStatus free_bytes(const std::string& dir, uint64_t* bytes) = 0;
};

// The real disk. Threads: any; stateless.
class PosixFileSystem final : public FileSystem {
 public:
  IoStatus open(const std::string& path, OpenMode mode, std::unique_ptr<File>* file) override;
  IoStatus rename(const std::string& from, const std::string& to) override;
  IoStatus remove(const std::string& path) override;
  IoStatus sync_dir(const std::string& dir) override;
  IoStatus list(const std::string& dir, std::vector<std::string>* names) override;
  IoStatus make_dir(const std::string& dir) override;
  bool exists(const std::string& path) override;
  bool is_directory(const std::string& path) override;
  IoStatus free_bytes(const std::string& dir, uint64_t* bytes) override;
};

// "dir/name"
std::string join_path(const std::string& dir, const std::string& name);

}  // namespace mailbox
