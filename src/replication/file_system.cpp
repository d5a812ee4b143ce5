#include "replication/file_system.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace mailbox {

std::string IoStatus::message() const {
  if (error == 0) return "ok";
  return context + ": " + std::strerror(error);
}

std::string join_path(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  if (dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

namespace {

class PosixFile final : public File {
 public:
  PosixFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixFile() override { ::close(fd_); }

  IoStatus write_at(uint64_t offset, const void* data, size_t length) override {
    const char* p = static_cast<const char*>(data);
    while (length > 0) {
      const ssize_t n = ::pwrite(fd_, p, length, static_cast<off_t>(offset));
      if (n < 0) {
        if (errno == EINTR) continue;
        return IoStatus::failed(errno, "pwrite " + path_ + " at " + std::to_string(offset));
      }
      p += n;
      offset += static_cast<uint64_t>(n);
      length -= static_cast<size_t>(n);
    }
    return IoStatus::ok();
  }

  IoStatus read_at(uint64_t offset, void* data, size_t length, size_t* read) override {
    char* p = static_cast<char*>(data);
    size_t total = 0;
    while (total < length) {
      const ssize_t n = ::pread(fd_, p + total, length - total, static_cast<off_t>(offset + total));
      if (n < 0) {
        if (errno == EINTR) continue;
        return IoStatus::failed(errno, "pread " + path_ + " at " + std::to_string(offset + total));
      }
      if (n == 0) break;
      total += static_cast<size_t>(n);
    }
    *read = total;
    return IoStatus::ok();
  }

  IoStatus sync_data() override {
    if (::fdatasync(fd_) != 0) return IoStatus::failed(errno, "fdatasync " + path_);
    return IoStatus::ok();
  }

  IoStatus size(uint64_t* bytes) override {
    struct stat st;
    if (::fstat(fd_, &st) != 0) return IoStatus::failed(errno, "fstat " + path_);
    *bytes = static_cast<uint64_t>(st.st_size);
    return IoStatus::ok();
  }

  IoStatus truncate(uint64_t bytes) override {
    if (::ftruncate(fd_, static_cast<off_t>(bytes)) != 0) return IoStatus::failed(errno, "ftruncate " + path_);
    return IoStatus::ok();
  }

  const std::string& path() const override { return path_; }

 private:
  int fd_;
  std::string path_;
};

}  // namespace

IoStatus PosixFileSystem::open(const std::string& path, OpenMode mode, std::unique_ptr<File>* file) {
  int flags = O_CLOEXEC;
  switch (mode) {
    case OpenMode::kRead:
      flags |= O_RDONLY;
      break;
    case OpenMode::kReadWrite:
      flags |= O_RDWR;
      break;
    case OpenMode::kCreateExclusive:
      flags |= O_RDWR | O_CREAT | O_EXCL;
      break;
  }
  const int fd = ::open(path.c_str(), flags, 0644);
  if (fd < 0) return IoStatus::failed(errno, "open " + path);
  *file = std::make_unique<PosixFile>(fd, path);
  return IoStatus::ok();
}

IoStatus PosixFileSystem::rename(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) return IoStatus::failed(errno, "rename " + from + " to " + to);
  return IoStatus::ok();
}

IoStatus PosixFileSystem::remove(const std::string& path) {
  if (::unlink(path.c_str()) != 0) return IoStatus::failed(errno, "unlink " + path);
  return IoStatus::ok();
}

IoStatus PosixFileSystem::sync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return IoStatus::failed(errno, "open directory " + dir);
  const int rv = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  if (rv != 0) return IoStatus::failed(saved, "fsync directory " + dir);
  return IoStatus::ok();
}

IoStatus PosixFileSystem::list(const std::string& dir, std::vector<std::string>* names) {
  names->clear();
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return IoStatus::failed(errno, "opendir " + dir);
  while (struct dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names->push_back(name);
  }
  ::closedir(d);
  std::sort(names->begin(), names->end());
  return IoStatus::ok();
}

IoStatus PosixFileSystem::make_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return IoStatus::failed(errno, "mkdir " + dir);
  return IoStatus::ok();
}

bool PosixFileSystem::exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

bool PosixFileSystem::is_directory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

IoStatus PosixFileSystem::free_bytes(const std::string& dir, uint64_t* bytes) {
  struct statvfs st;
  if (::statvfs(dir.c_str(), &st) != 0) return IoStatus::failed(errno, "statvfs " + dir);
  *bytes = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
  return IoStatus::ok();
}

}  // namespace mailbox
