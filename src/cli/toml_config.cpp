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

// The settings in effect as a file this reader accepts: one key per flag
// (given, or its default when `default_also`), flags as booleans, options
// that take many values as arrays, whole numbers bare, the rest quoted.
// Options without a value or default are left out (commented). The
// --config and --check-config options themselves are not written.
std::string TomlConfig::to_config(const CLI::App* app, bool default_also, bool write_description,
                                  std::string /*prefix*/) const {
  std::string out;
  for (const CLI::Option* option : app->get_options()) {
    if (option->get_lnames().empty() || !option->get_configurable()) continue;
    const std::string& name = option->get_lnames().front();
    if (name == "help" || name == "config" || name == "check-config") continue;
    const bool flag = option->get_expected_max() == 0;
    const bool many = option->get_items_expected_max() > 1;
    std::vector<std::string> values = option->results();
    if (values.empty()) {
      if (!default_also) continue;
      std::string d = option->get_default_str();
      if (flag) {
        values = {"false"};
      } else if (many && d.size() >= 2 && d.front() == '[' && d.back() == ']') {
        d = d.substr(1, d.size() - 2);
        size_t at = 0;
        while (!d.empty() && at <= d.size()) {
          const size_t comma = d.find(',', at);
          values.push_back(d.substr(at, comma == std::string::npos ? std::string::npos : comma - at));
          if (comma == std::string::npos) break;
          at = comma + 1;
        }
      } else if (!d.empty()) {
        values = {d};
      }
    }
    if (write_description && !option->get_description().empty()) out += "# " + option->get_description() + "\n";
    if (values.empty()) {
      out += "# " + name + " (not set)\n";
      continue;
    }
    auto value_text = [flag](const std::string& v) {
      if (flag) return std::string(v == "false" || v == "0" ? "false" : "true");
      const bool whole = !v.empty() && v.find_first_not_of("0123456789") == std::string::npos && v.size() < 19;
      if (whole) return v;
      std::ostringstream quoted;
      quoted << toml::value<std::string>(v);
      return quoted.str();
    };
    if (flag) {
      out += name + " = " + value_text(values.back()) + "\n";
    } else if (many) {
      out += name + " = [";
      for (size_t i = 0; i < values.size(); ++i) out += (i ? ", " : "") + value_text(values[i]);
      out += "]\n";
    } else {
      out += name + " = " + value_text(values.back()) + "\n";
    }
  }
  return out;
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
