// mailboxd's configuration file (cli/toml_config.hpp): TOML keys become
// flags, flags given on the command line win, unknown keys and tables are
// errors.
#include "cli/toml_config.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <unistd.h>

namespace mailbox {
namespace {

std::vector<CLI::ConfigItem> parse(const std::string& text) {
  std::istringstream in(text);
  return TomlConfig().from_config(in);
}

TEST(TomlConfig, KeysBecomeFlagInputs) {
  const auto items = parse("data-dir = \"/var/lib/mailbox\"\nnode-id = 3\ninsecure = true\n"
                           "peer = [\"1=a:1\", \"2=b:2\"]\n");
  ASSERT_EQ(items.size(), 4u);
  std::map<std::string, std::vector<std::string>> by_name;
  for (const auto& i : items) by_name[i.name] = i.inputs;
  EXPECT_EQ(by_name["data-dir"], std::vector<std::string>{"/var/lib/mailbox"});
  EXPECT_EQ(by_name["node-id"], std::vector<std::string>{"3"});
  EXPECT_EQ(by_name["insecure"], std::vector<std::string>{"true"});
  EXPECT_EQ(by_name["peer"], (std::vector<std::string>{"1=a:1", "2=b:2"}));
}

TEST(TomlConfig, BadTomlAndTablesAreErrors) {
  EXPECT_THROW(parse("data-dir = \n"), CLI::ConfigError);
  EXPECT_THROW(parse("[raft]\nnode-id = 1\n"), CLI::ConfigError);
  EXPECT_THROW(parse("peer = [[1]]\n"), CLI::ConfigError);
  try {
    parse("node-id = = 2\n");
    FAIL();
  } catch (const CLI::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("line 1"), std::string::npos) << e.what();
  }
}

struct Flags {
  CLI::App app{"test"};
  std::string data_dir = "default";
  uint64_t node_id = 1;
  std::vector<std::string> peers;
  bool insecure = false;
  Flags() {
    app.add_option("--data-dir", data_dir);
    app.add_option("--node-id", node_id);
    app.add_option("--peer", peers);
    app.add_flag("--insecure", insecure);
    app.config_formatter(std::make_shared<TomlConfig>());
    app.allow_config_extras(CLI::config_extras_mode::error);
    app.set_config("--config");
  }
};

std::string write_file(const std::string& text) {
  char path[] = "/tmp/mailbox-config-XXXXXX";
  const int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  close(fd);
  std::ofstream(path) << text;
  return path;
}

TEST(TomlConfig, CommandLineOverridesTheFile) {
  const std::string path = write_file("data-dir = \"/from/file\"\nnode-id = 7\ninsecure = true\npeer = [\"7=x:1\"]\n");
  Flags f;
  std::vector<std::string> args = {"test", "--config", path, "--node-id", "9"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  f.app.parse(static_cast<int>(argv.size()), argv.data());
  EXPECT_EQ(f.data_dir, "/from/file");
  EXPECT_EQ(f.node_id, 9u);
  EXPECT_TRUE(f.insecure);
  EXPECT_EQ(f.peers, std::vector<std::string>{"7=x:1"});
  std::remove(path.c_str());
}

TEST(TomlConfig, UnknownKeyIsAnError) {
  const std::string path = write_file("data-dir = \"/x\"\nno-such-flag = 1\n");
  Flags f;
  std::vector<std::string> args = {"test", "--config", path};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  EXPECT_THROW(f.app.parse(static_cast<int>(argv.size()), argv.data()), CLI::ConfigError);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace mailbox

namespace mailbox {
namespace {

// What --check-config prints reads back to the same settings.
TEST(TomlConfig, WrittenSettingsReadBack) {
  const std::string path = write_file("data-dir = \"/from \\\"file\\\"\"\nnode-id = 7\ninsecure = true\n"
                                      "peer = [\"7=x:1\", \"8=y:2\"]\n");
  Flags first;
  std::vector<std::string> args = {"test", "--config", path};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  first.app.parse(static_cast<int>(argv.size()), argv.data());
  const std::string written = first.app.config_to_str(true, false);
  EXPECT_EQ(written.find("config"), std::string::npos) << written;
  const std::string again = write_file(written);
  Flags second;
  std::vector<std::string> args2 = {"test", "--config", again};
  std::vector<char*> argv2;
  for (auto& a : args2) argv2.push_back(a.data());
  second.app.parse(static_cast<int>(argv2.size()), argv2.data());
  EXPECT_EQ(second.data_dir, "/from \"file\"");
  EXPECT_EQ(second.node_id, 7u);
  EXPECT_TRUE(second.insecure);
  EXPECT_EQ(second.peers, (std::vector<std::string>{"7=x:1", "8=y:2"}));
  std::remove(path.c_str());
  std::remove(again.c_str());
}

}  // namespace
}  // namespace mailbox
