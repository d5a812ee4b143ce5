#include "cli/toml_config.hpp"

#include <toml++/toml.h>

#include <iterator>
#include <sstream>

namespace mailbox {
namespace {

// One TOML value as a CLI11 input; false for tables and nested arrays.
bool scalar_text(const toml::node& node, std::string* out) {
  if (auto v = node.value_exact<std::string>()) {
    *out = *v;
  } else if (auto i = node.value_exact<int64_t>()) {
    *out = std::to_string(*i);
  } else if (auto b = node.value_exact<bool>()) {
    *out = *b ? "true" : "false";
  } else if (auto d = node.value_exact<double>()) {
    std::ostringstream s;
    s << *d;
    *out = s.str();
  } else {
    return false;
  }
  return true;
}

}  // namespace

std::string TomlConfig::to_config(const CLI::App* app, bool default_also, bool write_description,
                                  std::string prefix) const {
  // Writing a file back is CLI11's own TOML writer's job: its output is a
  // file this reader accepts (flat keys, strings, numbers, arrays).
  return CLI::ConfigTOML().to_config(app, default_also, write_description, std::move(prefix));
}

std::vector<CLI::ConfigItem> TomlConfig::from_config(std::istream& input) const {
  std::string text;
  text.assign(std::istreambuf_iterator<char>(input), std::istreambuf_iterator<char>());
  if (text.size() > kMaxConfigFileBytes) {
    throw CLI::ConfigError("the configuration file is larger than " + std::to_string(kMaxConfigFileBytes) +
                           " bytes");
  }
  toml::table table;
  try {
    table = toml::parse(text);
  } catch (const toml::parse_error& e) {
    std::ostringstream message;
    message << "the configuration file is not valid TOML: " << e.description() << " (line "
            << e.source().begin.line << ", column " << e.source().begin.column << ")";
    throw CLI::ConfigError(message.str());
  }
  std::vector<CLI::ConfigItem> items;
  for (const auto& [key, node] : table) {
    CLI::ConfigItem item;
    item.name = std::string(key.str());
    if (const toml::array* array = node.as_array()) {
      for (const auto& element : *array) {
        std::string value;
        if (!scalar_text(element, &value)) {
          throw CLI::ConfigError("configuration key '" + item.name + "': an array of strings or numbers only");
        }
        item.inputs.push_back(std::move(value));
      }
    } else {
      std::string value;
      if (!scalar_text(node, &value)) {
        throw CLI::ConfigError("configuration key '" + item.name +
                               "': tables are not used; write each flag as a top-level key");
      }
      item.inputs.push_back(std::move(value));
    }
    items.push_back(std::move(item));
  }
  return items;
}

}  // namespace mailbox
