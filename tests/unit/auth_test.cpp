// Unit tests of src/auth: token claims and rights, base64url, signing and
// verification with OpenSSL, the verified-token cache, key rotation.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "auth/base64url.hpp"
#include "auth/signing.hpp"
#include "auth/token.hpp"
#include "auth/verifier.hpp"

namespace mailbox::auth {
namespace {

constexpr int64_t kNow = 1'800'000'000;

struct Keys {
  KeyPairPem pair;
  std::shared_ptr<KeyRing> ring;
};

Keys make_keys(const std::string& kid) {
  Keys k;
  EXPECT_TRUE(generate_ed25519_key_pair(&k.pair).is_ok());
  k.ring = std::make_shared<KeyRing>();
  EXPECT_TRUE(k.ring->add_public_key_pem(kid, k.pair.public_pem).is_ok());
  return k;
}

TokenRequest alice_request(const std::string& kid = "k1") {
  TokenRequest r;
  r.key_id = kid;
  r.subject = "alice";
  r.audience = "test-cluster";
  r.issued_at_s = kNow - 10;
  r.expires_at_s = kNow + 3600;
  r.mailbox_patterns = {"alice", "team-*"};
  r.rights = static_cast<RightSet>(Right::kPut) | static_cast<RightSet>(Right::kConsume);
  return r;
}

std::string sign(const Keys& k, const TokenRequest& r) {
  std::string token;
  Status s = create_token(k.pair.private_pem, r, &token);
  EXPECT_TRUE(s.is_ok()) << s.message;
  return token;
}

TEST(Base64Url, RoundTripsAndRejectsNonCanonical) {
  for (std::string s : {"", "a", "ab", "abc", "abcd", "\xff\xfe\x00\x01"}) {
    std::string out;
    ASSERT_TRUE(base64url_decode(base64url_encode(s), &out));
    EXPECT_EQ(out, s);
  }
  EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");
  std::string out;
  EXPECT_FALSE(base64url_decode("YQ==", &out));  // padding
  EXPECT_FALSE(base64url_decode("Y+", &out));    // standard alphabet
  EXPECT_FALSE(base64url_decode("YR", &out));    // non-zero trailing bits
  EXPECT_FALSE(base64url_decode("Y", &out));     // impossible length
  EXPECT_TRUE(base64url_decode("YQ", &out));
  EXPECT_EQ(out, "a");
}

TEST(Rights, ParseAndPrint) {
  RightSet rights = 0;
  std::string bad;
  ASSERT_TRUE(parse_rights("put,consume,admin", &rights, &bad));
  EXPECT_EQ(rights_to_string(rights), "put,consume,admin");
  EXPECT_FALSE(parse_rights("put,eat", &rights, &bad));
  EXPECT_EQ(bad, "eat");
  EXPECT_FALSE(parse_rights("", &rights, &bad));
}

TEST(Patterns, ExactPrefixAndDeadLetters) {
  EXPECT_TRUE(mailbox_pattern_matches("alice", "alice"));
  EXPECT_TRUE(mailbox_pattern_matches("alice", "alice.dlq"));
  EXPECT_FALSE(mailbox_pattern_matches("alice", "alice2"));
  EXPECT_FALSE(mailbox_pattern_matches("alice", "alic"));
  EXPECT_FALSE(mailbox_pattern_matches("alice", "bob"));
  EXPECT_TRUE(mailbox_pattern_matches("team-*", "team-a"));
  EXPECT_TRUE(mailbox_pattern_matches("team-*", "team-"));
  EXPECT_FALSE(mailbox_pattern_matches("team-*", "team"));
  EXPECT_TRUE(mailbox_pattern_matches("*", "anything"));
  EXPECT_TRUE(is_valid_mailbox_pattern("*"));
  EXPECT_TRUE(is_valid_mailbox_pattern("team-*"));
  EXPECT_FALSE(is_valid_mailbox_pattern(""));
  EXPECT_FALSE(is_valid_mailbox_pattern("a*b"));
  EXPECT_FALSE(is_valid_mailbox_pattern("@admin"));
  EXPECT_FALSE(is_valid_mailbox_pattern("a/b"));
  EXPECT_FALSE(is_valid_mailbox_pattern(std::string(129, 'a')));
}

TEST(Authorize, RightAndMailboxBothNeeded) {
  TokenClaims c;
  c.mailbox_patterns = {"alice"};
  c.rights = static_cast<RightSet>(Right::kConsume);
  EXPECT_TRUE(authorize(c, Right::kConsume, "alice").is_ok());
  Status s = authorize(c, Right::kConsume, "bob");
  EXPECT_EQ(s.code, ErrorCode::kForbidden);
  EXPECT_NE(s.message.find("bob"), std::string::npos);
  EXPECT_EQ(authorize(c, Right::kPeek, "alice").code, ErrorCode::kForbidden);
  EXPECT_EQ(authorize(c, Right::kAdmin, "").code, ErrorCode::kForbidden);
  c.rights |= static_cast<RightSet>(Right::kAdmin);
  EXPECT_TRUE(authorize(c, Right::kAdmin, "").is_ok());
}

TEST(Authorize, ListingIsFilteredByTheToken) {
  TokenClaims c;
  c.mailbox_patterns = {"team-*", "alice"};
  std::vector<std::string> boxes{"alice", "alice.dlq", "bob", "team-a", "team-b", "teams"};
  auto copy = boxes;
  filter_listable(c, &copy);
  EXPECT_TRUE(copy.empty()) << "no list right: nothing";
  c.rights = static_cast<RightSet>(Right::kList);
  filter_listable(c, &boxes);
  EXPECT_EQ(boxes, (std::vector<std::string>{"alice", "alice.dlq", "team-a", "team-b"}));
}

TEST(Verifier, AcceptsAGoodTokenAndCachesIt) {
  Keys k = make_keys("k1");
  TokenVerifier v("test-cluster", k.ring);
  const std::string token = sign(k, alice_request());
  std::shared_ptr<const TokenClaims> claims;
  Status s = v.verify(token, kNow, &claims);
  ASSERT_TRUE(s.is_ok()) << s.message;
  EXPECT_EQ(claims->subject, "alice");
  EXPECT_EQ(claims->key_id, "k1");
  EXPECT_TRUE(claims->has_right(Right::kPut));
  EXPECT_FALSE(claims->has_right(Right::kPeek));
  EXPECT_EQ(claims->mailbox_patterns, (std::vector<std::string>{"alice", "team-*"}));
  ASSERT_TRUE(v.verify(token, kNow, &claims).is_ok());
  EXPECT_EQ(v.stats().signature_checks, 1u);
  EXPECT_EQ(v.stats().cache_hits, 1u);
}

TEST(Verifier, AttachmentCarriesTheToken) {
  Keys k = make_keys("k1");
  TokenVerifier v("test-cluster", k.ring);
  const std::string token = sign(k, alice_request());
  std::shared_ptr<const TokenClaims> claims;
  EXPECT_TRUE(v.verify_attachment("{\"token\":\"" + token + "\",\"meta\":1}", kNow, &claims).is_ok());
  for (std::optional<std::string_view> bad :
       {std::optional<std::string_view>(), std::optional<std::string_view>(""), std::optional<std::string_view>("{}"),
        std::optional<std::string_view>("[1]"), std::optional<std::string_view>("{\"token\":5}"),
        std::optional<std::string_view>("not json")}) {
    EXPECT_EQ(v.verify_attachment(bad, kNow, &claims).code, ErrorCode::kUnauthorized);
  }
}

TEST(Attachment, FastPathOnlyForTheExactShape) {
  std::string token;
  EXPECT_TRUE(exact_token_attachment(R"({"token":"a.b-c_d.e"})", &token));
  EXPECT_EQ(token, "a.b-c_d.e");
  for (std::string_view other : {R"({"token": "a.b.c"})", R"({"token":"a\u0041"})", R"({"token":"a","x":1})",
                                 R"({"token":"a"} )", R"({"tok":"a"})"}) {
    EXPECT_FALSE(exact_token_attachment(other, &token)) << other;
  }
  // The general parser still reads the other shapes.
  EXPECT_TRUE(token_from_attachment(std::string_view(R"({ "token" : "a.b.c", "meta": [1] })"), &token).is_ok());
  EXPECT_EQ(token, "a.b.c");
  EXPECT_TRUE(token_from_attachment(std::string_view(R"({"token":"a\u002eb"})"), &token).is_ok());
  EXPECT_EQ(token, "a.b");
}

TEST(Verifier, RefusesExpiredForeignUnknownKeyAndTampered) {
  Keys k = make_keys("k1");
  Keys other = make_keys("k1");  // same kid, different key
  TokenVerifier v("test-cluster", k.ring);
  std::shared_ptr<const TokenClaims> claims;

  TokenRequest expired = alice_request();
  expired.issued_at_s = kNow - 7200;
  expired.expires_at_s = kNow - 3600;
  Status s = v.verify(sign(k, expired), kNow, &claims);
  EXPECT_EQ(s.code, ErrorCode::kUnauthorized);
  EXPECT_NE(s.message.find("expired"), std::string::npos);

  TokenRequest foreign = alice_request();
  foreign.audience = "other-cluster";
  s = v.verify(sign(k, foreign), kNow, &claims);
  EXPECT_EQ(s.code, ErrorCode::kUnauthorized);
  EXPECT_NE(s.message.find("another cluster"), std::string::npos);

  s = v.verify(sign(k, alice_request("k9")), kNow, &claims);
  EXPECT_EQ(s.code, ErrorCode::kUnauthorized);
  EXPECT_NE(s.message.find("unknown key"), std::string::npos);

  s = v.verify(sign(other, alice_request()), kNow, &claims);
  EXPECT_EQ(s.code, ErrorCode::kUnauthorized);
  EXPECT_NE(s.message.find("signature"), std::string::npos);

  // Tampered claims: a different subject with the original signature.
  const std::string good = sign(k, alice_request());
  const size_t d1 = good.find('.');
  const size_t d2 = good.find('.', d1 + 1);
  std::string claims_json;
  ASSERT_TRUE(base64url_decode(good.substr(d1 + 1, d2 - d1 - 1), &claims_json));
  auto j = nlohmann::json::parse(claims_json);
  j["mbx"] = {"*"};
  const std::string tampered = good.substr(0, d1 + 1) + base64url_encode(j.dump()) + good.substr(d2);
  s = v.verify(tampered, kNow, &claims);
  EXPECT_EQ(s.code, ErrorCode::kUnauthorized);
  EXPECT_NE(s.message.find("signature"), std::string::npos);
  // The message never echoes the token.
  EXPECT_EQ(s.message.find(tampered.substr(0, 20)), std::string::npos);
  EXPECT_TRUE(v.verify(good, kNow, &claims).is_ok());
}

TEST(Verifier, RefusesAlgNoneAndMalformedShapes) {
  Keys k = make_keys("k1");
  TokenVerifier v("test-cluster", k.ring);
  std::shared_ptr<const TokenClaims> claims;
  const std::string payload = base64url_encode(
      R"({"sub":"a","aud":"test-cluster","exp":1900000000,"mbx":["*"],"ops":["put"]})");
  const std::string none = base64url_encode(R"({"alg":"none","kid":"k1"})") + "." + payload + ".";
  EXPECT_EQ(v.verify(none, kNow, &claims).code, ErrorCode::kUnauthorized);
  for (const std::string& bad : std::vector<std::string>{"", "a", "a.b", "a.b.c.d", "!!.!!.!!", std::string(kMaxTokenBytes + 1, 'a')}) {
    EXPECT_EQ(v.verify(bad, kNow, &claims).code, ErrorCode::kUnauthorized) << bad;
  }
  TokenClaims c;
  EXPECT_FALSE(parse_token_claims(R"({"sub":"a","aud":"x","exp":1.5,"mbx":[],"ops":[]})", &c).is_ok());
  EXPECT_FALSE(parse_token_claims(R"({"sub":"a","aud":"x","exp":1,"mbx":["a*b"],"ops":[]})", &c).is_ok());
  EXPECT_FALSE(parse_token_claims(R"({"sub":"a","aud":"x","exp":1,"mbx":["a"],"ops":["eat"]})", &c).is_ok());
  EXPECT_FALSE(parse_token_claims(R"({"sub":"","aud":"x","exp":1,"mbx":["a"],"ops":[]})", &c).is_ok());
  EXPECT_FALSE(parse_token_claims(R"({"sub":"a","exp":1,"mbx":["a"],"ops":[]})", &c).is_ok());
  ASSERT_TRUE(parse_token_claims(R"({"sub":"a","aud":["x","y"],"exp":1,"nbf":0,"mbx":["a"],"ops":["list"]})", &c)
                  .is_ok());
  EXPECT_EQ(c.audiences.size(), 2u);
  std::string kid;
  EXPECT_FALSE(parse_token_header(R"({"alg":"EdDSA","kid":"k","crit":["x"]})", &kid).is_ok());
  EXPECT_FALSE(parse_token_header(R"({"alg":"HS256","kid":"k"})", &kid).is_ok());
  EXPECT_FALSE(parse_token_header(R"({"alg":"EdDSA"})", &kid).is_ok());
}

TEST(Verifier, CachedTokenStillExpires) {
  Keys k = make_keys("k1");
  TokenVerifier v("test-cluster", k.ring);
  const std::string token = sign(k, alice_request());
  std::shared_ptr<const TokenClaims> claims;
  ASSERT_TRUE(v.verify(token, kNow, &claims).is_ok());
  EXPECT_EQ(v.verify(token, kNow + 3600 + kClockSkewAllowanceS + 1, &claims).code, ErrorCode::kUnauthorized);
  EXPECT_EQ(v.stats().cache_hits, 1u);
}

TEST(Verifier, CacheIsBounded) {
  Keys k = make_keys("k1");
  constexpr size_t kEntries = 4;
  TokenVerifier v("test-cluster", k.ring, kEntries);
  std::vector<std::string> tokens;
  for (int i = 0; i < 10; ++i) {
    TokenRequest r = alice_request();
    r.subject = "user" + std::to_string(i);
    tokens.push_back(sign(k, r));
  }
  std::shared_ptr<const TokenClaims> claims;
  for (const auto& t : tokens) ASSERT_TRUE(v.verify(t, kNow, &claims).is_ok());
  EXPECT_EQ(v.stats().cached, kEntries);
  ASSERT_TRUE(v.verify(tokens.back(), kNow, &claims).is_ok());
  EXPECT_EQ(v.stats().cache_hits, 1u);
  ASSERT_TRUE(v.verify(tokens.front(), kNow, &claims).is_ok());  // evicted: checked again
  EXPECT_EQ(v.stats().signature_checks, 11u);
}

TEST(Verifier, KeyRotationDropsTheOldKeyAtOnce) {
  Keys k1 = make_keys("k1");
  Keys k2 = make_keys("k2");
  TokenVerifier v("test-cluster", k1.ring);
  const std::string old_token = sign(k1, alice_request("k1"));
  const std::string new_token = sign(k2, alice_request("k2"));
  std::shared_ptr<const TokenClaims> claims;
  ASSERT_TRUE(v.verify(old_token, kNow, &claims).is_ok());
  EXPECT_EQ(v.verify(new_token, kNow, &claims).code, ErrorCode::kUnauthorized);
  // Both keys, then only the new one.
  auto both = std::make_shared<KeyRing>();
  ASSERT_TRUE(both->add_public_key_pem("k1", k1.pair.public_pem).is_ok());
  ASSERT_TRUE(both->add_public_key_pem("k2", k2.pair.public_pem).is_ok());
  v.replace_keys(both);
  EXPECT_TRUE(v.verify(old_token, kNow, &claims).is_ok());
  EXPECT_TRUE(v.verify(new_token, kNow, &claims).is_ok());
  v.replace_keys(k2.ring);
  EXPECT_EQ(v.verify(old_token, kNow, &claims).code, ErrorCode::kUnauthorized) << "cached under the old keys";
  EXPECT_TRUE(v.verify(new_token, kNow, &claims).is_ok());
}

// Many threads verify while keys are replaced (run under TSan by `make
// sanitize`): every answer is OK or `unauthorized`, never anything else.
TEST(Verifier, ConcurrentVerifyAndReplaceKeys) {
  Keys k = make_keys("k1");
  TokenVerifier v("test-cluster", k.ring, 8);
  std::vector<std::string> tokens;
  for (int i = 0; i < 16; ++i) {
    TokenRequest r = alice_request();
    r.subject = "u" + std::to_string(i);
    tokens.push_back(sign(k, r));
  }
  constexpr int kThreads = 4;
  constexpr int kRounds = 200;
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::shared_ptr<const TokenClaims> claims;
      for (int i = 0; i < kRounds; ++i) {
        Status s = v.verify(tokens[(i * 7 + t) % tokens.size()], kNow, &claims);
        if (!s.is_ok() && s.code != ErrorCode::kUnauthorized) bad.fetch_add(1);
        if (s.is_ok() && claims->subject.empty()) bad.fetch_add(1);
      }
    });
  }
  for (int i = 0; i < 50; ++i) v.replace_keys(k.ring);
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_LE(v.stats().cached, 8u);
}

TEST(KeyRing, RefusesBadKeys) {
  KeyRing ring;
  EXPECT_FALSE(ring.add_public_key_pem("k", "not pem").is_ok());
  KeyPairPem pair;
  ASSERT_TRUE(generate_ed25519_key_pair(&pair).is_ok());
  EXPECT_FALSE(ring.add_public_key_pem("k", pair.private_pem).is_ok()) << "a private key is not a public key";
  EXPECT_TRUE(ring.add_public_key_pem("k", pair.public_pem).is_ok());
  EXPECT_FALSE(ring.add_public_key_pem("k", pair.public_pem).is_ok()) << "repeated kid";
  EXPECT_EQ(ring.key_ids(), "k");
}

TEST(Signing, RefusesBadRequests) {
  Keys k = make_keys("k1");
  std::string token;
  TokenRequest r = alice_request();
  r.rights = 0;
  EXPECT_FALSE(create_token(k.pair.private_pem, r, &token).is_ok());
  r = alice_request();
  r.mailbox_patterns = {"a*b"};
  EXPECT_FALSE(create_token(k.pair.private_pem, r, &token).is_ok());
  r = alice_request();
  r.expires_at_s = r.issued_at_s;
  EXPECT_FALSE(create_token(k.pair.private_pem, r, &token).is_ok());
  EXPECT_FALSE(create_token(k.pair.public_pem, alice_request(), &token).is_ok());
}

}  // namespace
}  // namespace mailbox::auth
