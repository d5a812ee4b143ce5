#include "tests/sim/sim_file_system.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace mailbox::sim {

namespace {
constexpr uint64_t kSectorBytes = 512;
}  // namespace

class SimFile final : public File {
 public:
  SimFile(SimFileSystem& fs, std::shared_ptr<SimFileSystem::Inode> inode, std::string path, bool writable,
          uint64_t generation)
      : fs_(fs), inode_(std::move(inode)), path_(std::move(path)), writable_(writable), generation_(generation) {}

  IoStatus write_at(uint64_t offset, const void* data, size_t length) override {
    if (!alive()) return IoStatus::failed(EIO, "write " + path_ + " (after a crash)");
    if (!writable_) return IoStatus::failed(EBADF, "write " + path_);
    if (fs_.inject(fs_.write_error_per_mille_)) return IoStatus::failed(EIO, "pwrite " + path_ + " (injected)");
    const uint64_t end = offset + length;
    if (end > inode_->current.size()) {
      const uint64_t growth = end - inode_->current.size();
      if (fs_.used_bytes() + growth > fs_.capacity_bytes_) {
        return IoStatus::failed(ENOSPC, "pwrite " + path_ + " at " + std::to_string(offset));
      }
      inode_->current.resize(end, '\0');
      inode_->size_unsynced = true;
    }
    std::memcpy(inode_->current.data() + offset, data, length);
    inode_->unsynced.emplace_back(offset, length);
    return IoStatus::ok();
  }

  IoStatus read_at(uint64_t offset, void* data, size_t length, size_t* read) override {
    if (!alive()) return IoStatus::failed(EIO, "read " + path_ + " (after a crash)");
    if (offset >= inode_->current.size()) {
      *read = 0;
      return IoStatus::ok();
    }
    const size_t n = static_cast<size_t>(std::min<uint64_t>(length, inode_->current.size() - offset));
    std::memcpy(data, inode_->current.data() + offset, n);
    *read = n;
    return IoStatus::ok();
  }

  IoStatus sync_data() override {
    if (!alive()) return IoStatus::failed(EIO, "fdatasync " + path_ + " (after a crash)");
    if (fs_.inject(fs_.sync_error_per_mille_)) {
      // A failed fsync may have written some of the data, or none.
      return IoStatus::failed(EIO, "fdatasync " + path_ + " (injected)");
    }
    inode_->durable = inode_->current;
    inode_->unsynced.clear();
    inode_->size_unsynced = false;
    return IoStatus::ok();
  }

  IoStatus size(uint64_t* bytes) override {
    if (!alive()) return IoStatus::failed(EIO, "fstat " + path_ + " (after a crash)");
    *bytes = inode_->current.size();
    return IoStatus::ok();
  }

  IoStatus truncate(uint64_t bytes) override {
    if (!alive()) return IoStatus::failed(EIO, "ftruncate " + path_ + " (after a crash)");
    inode_->current.resize(bytes, '\0');
    inode_->size_unsynced = true;
    return IoStatus::ok();
  }

  const std::string& path() const override { return path_; }

 private:
  bool alive() const { return generation_ == fs_.generation_; }
  SimFileSystem& fs_;
  std::shared_ptr<SimFileSystem::Inode> inode_;
  std::string path_;
  bool writable_;
  uint64_t generation_;
};

SimFileSystem::SimFileSystem(std::function<uint64_t(uint64_t)> random) : random_(std::move(random)) {}

bool SimFileSystem::inject(unsigned per_mille) {
  if (per_mille == 0 || random_(1000) >= per_mille) return false;
  ++injected_errors_;
  return true;
}

std::pair<std::string, std::string> SimFileSystem::split(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {".", path};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

SimFileSystem::Directory* SimFileSystem::directory(const std::string& dir) {
  auto it = dirs_.find(dir);
  return it == dirs_.end() ? nullptr : &it->second;
}

IoStatus SimFileSystem::open(const std::string& path, OpenMode mode, std::unique_ptr<File>* file) {
  auto [dir, name] = split(path);
  Directory* d = directory(dir);
  if (d == nullptr) return IoStatus::failed(ENOENT, "open " + path);
  auto it = d->current.find(name);
  if (mode == OpenMode::kCreateExclusive) {
    if (it != d->current.end()) return IoStatus::failed(EEXIST, "open " + path);
    auto inode = std::make_shared<Inode>();
    d->current[name] = inode;
    *file = std::make_unique<SimFile>(*this, inode, path, true, generation_);
    return IoStatus::ok();
  }
  if (it == d->current.end()) return IoStatus::failed(ENOENT, "open " + path);
  *file = std::make_unique<SimFile>(*this, it->second, path, mode == OpenMode::kReadWrite, generation_);
  return IoStatus::ok();
}

IoStatus SimFileSystem::rename(const std::string& from, const std::string& to) {
  auto [from_dir, from_name] = split(from);
  auto [to_dir, to_name] = split(to);
  Directory* a = directory(from_dir);
  Directory* b = directory(to_dir);
  if (a == nullptr || b == nullptr) return IoStatus::failed(ENOENT, "rename " + from);
  auto it = a->current.find(from_name);
  if (it == a->current.end()) return IoStatus::failed(ENOENT, "rename " + from);
  auto inode = it->second;
  a->current.erase(it);
  b->current[to_name] = inode;
  return IoStatus::ok();
}

IoStatus SimFileSystem::remove(const std::string& path) {
  auto [dir, name] = split(path);
  Directory* d = directory(dir);
  if (d == nullptr || d->current.erase(name) == 0) return IoStatus::failed(ENOENT, "unlink " + path);
  return IoStatus::ok();
}

IoStatus SimFileSystem::sync_dir(const std::string& dir) {
  Directory* d = directory(dir);
  if (d == nullptr) return IoStatus::failed(ENOENT, "fsync directory " + dir);
  if (inject(sync_error_per_mille_)) return IoStatus::failed(EIO, "fsync directory " + dir + " (injected)");
  d->durable = d->current;
  return IoStatus::ok();
}

IoStatus SimFileSystem::list(const std::string& dir, std::vector<std::string>* names) {
  names->clear();
  Directory* d = directory(dir);
  if (d == nullptr) return IoStatus::failed(ENOENT, "opendir " + dir);
  for (const auto& [name, inode] : d->current) names->push_back(name);
  // Subdirectories appear as names too.
  const std::string prefix = dir + "/";
  for (const auto& [path, sub] : dirs_) {
    if (path.size() > prefix.size() && path.rfind(prefix, 0) == 0 && path.find('/', prefix.size()) == std::string::npos) {
      names->push_back(path.substr(prefix.size()));
    }
  }
  std::sort(names->begin(), names->end());
  return IoStatus::ok();
}

IoStatus SimFileSystem::make_dir(const std::string& dir) {
  dirs_[dir];  // directories are durable once made (made at start only)
  return IoStatus::ok();
}

bool SimFileSystem::exists(const std::string& path) {
  if (dirs_.count(path)) return true;
  auto [dir, name] = split(path);
  Directory* d = directory(dir);
  return d != nullptr && d->current.count(name) != 0;
}

bool SimFileSystem::is_directory(const std::string& path) { return dirs_.count(path) != 0; }

IoStatus SimFileSystem::free_bytes(const std::string&, uint64_t* bytes) {
  const uint64_t used = used_bytes();
  *bytes = capacity_bytes_ > used ? capacity_bytes_ - used : 0;
  return IoStatus::ok();
}

uint64_t SimFileSystem::used_bytes() const {
  std::set<const Inode*> seen;
  uint64_t total = 0;
  for (const auto& [path, d] : dirs_) {
    for (const auto& [name, inode] : d.current) {
      if (seen.insert(inode.get()).second) total += inode->current.size();
    }
  }
  return total;
}

void SimFileSystem::crash() {
  ++generation_;
  std::set<Inode*> done;
  auto settle = [&](const std::shared_ptr<Inode>& inode) {
    if (!done.insert(inode.get()).second) return;
    // Every unsynced write reached the disk in part: a random subset of its
    // sectors (none, some or all).
    std::string result = inode->durable;
    if (inode->size_unsynced || inode->current.size() > result.size()) {
      // The new size may or may not have reached the disk.
      if (random_(2) == 0) result.resize(inode->current.size(), '\0');
    }
    for (const auto& [offset, length] : inode->unsynced) {
      const unsigned policy = static_cast<unsigned>(random_(4));  // 0 none, 1 all, 2-3 some sectors
      for (uint64_t s = offset / kSectorBytes * kSectorBytes; s < offset + length; s += kSectorBytes) {
        const bool keep = policy == 1 || (policy >= 2 && random_(2) == 0);
        if (!keep) continue;
        const uint64_t begin = std::max(s, offset);
        const uint64_t end = std::min(s + kSectorBytes, offset + length);
        if (end > result.size()) result.resize(end, '\0');
        if (end <= inode->current.size()) std::memcpy(result.data() + begin, inode->current.data() + begin, end - begin);
      }
    }
    inode->current = result;
    inode->durable = result;
    inode->unsynced.clear();
    inode->size_unsynced = false;
  };
  for (auto& [path, d] : dirs_) {
    // Unsynced changes of names: each persisted or not, at random.
    std::map<std::string, std::shared_ptr<Inode>> next = d.durable;
    for (const auto& [name, inode] : d.current) {
      auto it = d.durable.find(name);
      if (it == d.durable.end() || it->second != inode) {
        if (random_(2) == 0) next[name] = inode;
      }
    }
    for (const auto& [name, inode] : d.durable) {
      if (!d.current.count(name) && random_(2) == 0) next.erase(name);
    }
    d.current = next;
    d.durable = next;
    for (auto& [name, inode] : d.current) settle(inode);
  }
}

bool SimFileSystem::flip_bit(const std::string& path, uint64_t offset, unsigned bit) {
  auto [dir, name] = split(path);
  Directory* d = directory(dir);
  if (d == nullptr) return false;
  auto it = d->current.find(name);
  if (it == d->current.end() || offset >= it->second->durable.size() || offset >= it->second->current.size()) {
    return false;
  }
  it->second->durable[offset] ^= static_cast<char>(1u << (bit % 8));
  it->second->current[offset] ^= static_cast<char>(1u << (bit % 8));
  return true;
}

std::vector<std::string> SimFileSystem::files() const {
  std::vector<std::string> out;
  for (const auto& [path, d] : dirs_) {
    for (const auto& [name, inode] : d.current) out.push_back(path + "/" + name);
  }
  return out;
}

uint64_t SimFileSystem::file_size(const std::string& path) const {
  auto [dir, name] = split(path);
  auto it = dirs_.find(dir);
  if (it == dirs_.end()) return 0;
  auto f = it->second.current.find(name);
  return f == it->second.current.end() ? 0 : f->second->current.size();
}

}  // namespace mailbox::sim
