// toml_config.hpp: mailboxd's configuration file (`--config FILE`), TOML
// read by toml++ (Debian's libtomlplusplus-dev) and handed to CLI11 so
// that every flag can be set in it and a flag on the command line
// overrides it.
//
// The file: one top-level key per flag, named as the long flag without its
// dashes (`data-dir = "/var/lib/mailbox"`, `node-id = 1`,
// `peer = ["1=10.0.0.1:7450", "2=10.0.0.2:7450"]`, `insecure = true`).
// Tables are refused (the flags are flat), and so is a key that names no
// flag (mailboxd sets CLI11's extras mode to error). docs/OPERATIONS.md,
// "Configuration file", and packaging/mailboxd.toml show every key.
//
// Threads: used by CLI11 during parsing, on the main thread. Errors are
// CLI::ConfigError exceptions, which CLI11 turns into a usage error.
#pragma once

#include <CLI/CLI.hpp>
#include <istream>
#include <string>
#include <vector>

namespace mailbox {

// Largest configuration file read.
inline constexpr size_t kMaxConfigFileBytes = 1 << 20;

class TomlConfig : public CLI::Config {
 public:
  std::string to_config(const CLI::App* app, bool default_also, bool write_description,
                        std::string prefix) const override;
  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override;
};

}  // namespace mailbox
