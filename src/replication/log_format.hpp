// log_format.hpp: the on-disk format of the Raft log: segment headers and
// records. Pure encoding and checking; no I/O.
//
// A segment file is `kSegmentHeaderBytes` of header followed by records:
//
//   segment header (in a 4 KiB block, rest zero):
//     magic "MBXSEG01" | format u32 | header bytes u32 | segment seq u64 |
//     first index u64 | node id u64 | xxh3 of the above u64
//   record (8-byte aligned, payload zero-padded to 8):
//     magic u32 | entry type u8 | 0 u8[3] | payload bytes u32 | 0 u32 |
//     index u64 | term u64 | write seq u64 | write start u64 |
//     xxh3(payload) u64 | xxh3(header above) u64 | payload
//
// `first index` says the log continues at that index: a segment started
// after a suffix truncation (or a snapshot install) has a first index at or
// below the end of the segments before it, whose later records it replaces.
// `write seq` numbers the writes (one pwrite + fdatasync each), increasing
// for the life of the log; `write start` is the offset in its segment where
// that write began. Recovery uses them to tell a torn last write from damage
// in the middle of the log: after damage at offset D, every valid record of
// a newer write than the last good one must belong to a write that started
// at or before D (the one torn across D); and a record of an older write
// than the one before it is stale (left behind by an earlier repair) and
// ends the segment's data.
//
// Threads: pure functions, any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mailbox::logfmt {

inline constexpr uint32_t kFormatVersion = 1;
inline constexpr size_t kSegmentHeaderBytes = 4096;
inline constexpr size_t kRecordHeaderBytes = 64;
inline constexpr size_t kRecordAlignBytes = 8;
inline constexpr uint32_t kRecordMagic = 0x4d42524cu;  // "LRBM" little-endian: "MBRL"
// Largest payload a record may carry (an entry is at most limits::kMaxEntryBytes).
inline constexpr uint32_t kMaxRecordPayloadBytes = 64u * 1024 * 1024;

struct SegmentHeader {
  uint64_t seq = 0;
  uint64_t first_index = 0;
  uint64_t node_id = 0;
};

struct RecordHeader {
  uint8_t type = 0;  // RAFT_COMMAND, RAFT_BARRIER, RAFT_CHANGE
  uint32_t payload_bytes = 0;
  uint64_t index = 0;
  uint64_t term = 0;
  uint64_t write_seq = 0;
  uint64_t write_start = 0;
  uint64_t payload_hash = 0;
};

// Writes a header block of kSegmentHeaderBytes into `out` (which it sizes).
void encode_segment_header(const SegmentHeader& header, std::string* out);
enum class HeaderCheck { kValid, kZero, kDamaged };
// Checks the first kSegmentHeaderBytes of `block`.
HeaderCheck decode_segment_header(std::string_view block, SegmentHeader* header);

// Bytes a record with `payload_bytes` of payload takes on disk.
inline constexpr size_t record_bytes(size_t payload_bytes) {
  return kRecordHeaderBytes + (payload_bytes + kRecordAlignBytes - 1) / kRecordAlignBytes * kRecordAlignBytes;
}
uint64_t payload_hash(std::string_view payload);
// Appends the record (header, payload, padding) to `out`.
void append_record(const RecordHeader& header, std::string_view payload, std::string* out);
enum class RecordCheck { kValid, kZero, kDamaged };
// Checks a record header (kRecordHeaderBytes at `bytes`): kZero for an
// all-zero header (the end of the written part), kDamaged for anything that
// is neither zero nor a header whose own checksum matches.
RecordCheck decode_record_header(std::string_view bytes, RecordHeader* header);

}  // namespace mailbox::logfmt
