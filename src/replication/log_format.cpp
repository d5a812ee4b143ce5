#include "replication/log_format.hpp"

#include <xxhash.h>

#include <algorithm>
#include <cstring>

namespace mailbox::logfmt {
namespace {

constexpr char kSegmentMagic[8] = {'M', 'B', 'X', 'S', 'E', 'G', '0', '1'};
constexpr size_t kSegmentFieldsBytes = 8 + 4 + 4 + 8 + 8 + 8;  // before the checksum

void put32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint32_t get32(std::string_view b, size_t at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<unsigned char>(b[at + i])) << (8 * i);
  return v;
}
uint64_t get64(std::string_view b, size_t at) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(b[at + i])) << (8 * i);
  return v;
}
bool all_zero(std::string_view b) {
  return std::all_of(b.begin(), b.end(), [](char c) { return c == 0; });
}
uint64_t hash(std::string_view b) { return XXH3_64bits(b.data(), b.size()); }

}  // namespace

void encode_segment_header(const SegmentHeader& header, std::string* out) {
  out->clear();
  out->reserve(kSegmentHeaderBytes);
  out->append(kSegmentMagic, sizeof kSegmentMagic);
  put32(out, kFormatVersion);
  put32(out, static_cast<uint32_t>(kSegmentHeaderBytes));
  put64(out, header.seq);
  put64(out, header.first_index);
  put64(out, header.node_id);
  put64(out, hash(*out));
  out->resize(kSegmentHeaderBytes, '\0');
}

HeaderCheck decode_segment_header(std::string_view block, SegmentHeader* header) {
  if (block.size() < kSegmentHeaderBytes) return HeaderCheck::kDamaged;
  block = block.substr(0, kSegmentHeaderBytes);
  if (all_zero(block)) return HeaderCheck::kZero;
  if (std::memcmp(block.data(), kSegmentMagic, sizeof kSegmentMagic) != 0) return HeaderCheck::kDamaged;
  if (get64(block, kSegmentFieldsBytes) != hash(block.substr(0, kSegmentFieldsBytes))) return HeaderCheck::kDamaged;
  if (get32(block, 8) != kFormatVersion || get32(block, 12) != kSegmentHeaderBytes) return HeaderCheck::kDamaged;
  header->seq = get64(block, 16);
  header->first_index = get64(block, 24);
  header->node_id = get64(block, 32);
  return HeaderCheck::kValid;
}

uint64_t payload_hash(std::string_view payload) { return hash(payload); }

void append_record(const RecordHeader& header, std::string_view payload, std::string* out) {
  const size_t start = out->size();
  put32(out, kRecordMagic);
  out->push_back(static_cast<char>(header.type));
  out->append(3, '\0');
  put32(out, static_cast<uint32_t>(payload.size()));
  put32(out, 0);
  put64(out, header.index);
  put64(out, header.term);
  put64(out, header.write_seq);
  put64(out, header.write_start);
  put64(out, payload_hash(payload));
  put64(out, hash(std::string_view(out->data() + start, out->size() - start)));
  out->append(payload.data(), payload.size());
  out->resize(start + record_bytes(payload.size()), '\0');
}

RecordCheck decode_record_header(std::string_view bytes, RecordHeader* header) {
  if (bytes.size() < kRecordHeaderBytes) return RecordCheck::kDamaged;
  bytes = bytes.substr(0, kRecordHeaderBytes);
  if (all_zero(bytes)) return RecordCheck::kZero;
  if (get32(bytes, 0) != kRecordMagic) return RecordCheck::kDamaged;
  if (get64(bytes, kRecordHeaderBytes - 8) != hash(bytes.substr(0, kRecordHeaderBytes - 8))) {
    return RecordCheck::kDamaged;
  }
  header->type = static_cast<uint8_t>(bytes[4]);
  header->payload_bytes = get32(bytes, 8);
  header->index = get64(bytes, 16);
  header->term = get64(bytes, 24);
  header->write_seq = get64(bytes, 32);
  header->write_start = get64(bytes, 40);
  header->payload_hash = get64(bytes, 48);
  if (header->payload_bytes > kMaxRecordPayloadBytes) return RecordCheck::kDamaged;
  return RecordCheck::kValid;
}

}  // namespace mailbox::logfmt
