// raft_include.hpp: includes libraft's C headers from C++.
//
// raft.h checks ABI compatibility with static_asserts over sizeof() of
// anonymous structs, which C++ rejects ("types may not be defined in sizeof
// expressions") and it has no extern "C" block. While the headers are read, those checks become no-ops; the
// layout is still checked by the C library's own build. Include libraft only
// through this file.
#pragma once

#pragma push_macro("__cpp_static_assert")
#undef __cpp_static_assert
#define _Static_assert(condition, message) static_assert(true, message)
extern "C" {
#include <raft.h>
}
#undef _Static_assert
#pragma pop_macro("__cpp_static_assert")
