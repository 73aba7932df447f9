#include "manifest.hpp"

#include <array>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace trt_edge {

namespace {

const Json kNull;

class Parser {
public:
    explicit Parser(const std::string& text) : s_(text) {}

    Json document() {
        Json value = parse_value();
        skip_ws();
        if (pos_ != s_.size()) fail("trailing characters");
        return value;
    }

private:
    [[noreturn]] void fail(const char* what) const {
        throw std::runtime_error(std::string("malformed JSON at byte ") + std::to_string(pos_) + ": " + what);
    }
    void skip_ws() {
        while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t')) ++pos_;
    }
    bool consume(const char* word) {
        std::size_t n = std::strlen(word);
        if (s_.compare(pos_, n, word) == 0) { pos_ += n; return true; }
        return false;
    }
    Json parse_value() {
        skip_ws();
        if (pos_ >= s_.size()) fail("unexpected end");
        Json v;
        char c = s_[pos_];
        if (c == '{') {
            v.type = Json::Type::Object;
            ++pos_;
            skip_ws();
            if (pos_ < s_.size() && s_[pos_] == '}') { ++pos_; return v; }
            for (;;) {
                skip_ws();
                if (pos_ >= s_.size() || s_[pos_] != '"') fail("expected a key");
                std::string key = parse_string();
                skip_ws();
                if (pos_ >= s_.size() || s_[pos_] != ':') fail("expected ':'");
                ++pos_;
                v.object[key] = parse_value();
                skip_ws();
                if (pos_ < s_.size() && s_[pos_] == ',') { ++pos_; continue; }
                if (pos_ < s_.size() && s_[pos_] == '}') { ++pos_; return v; }
                fail("expected ',' or '}'");
            }
        }
        if (c == '[') {
            v.type = Json::Type::Array;
            ++pos_;
            skip_ws();
            if (pos_ < s_.size() && s_[pos_] == ']') { ++pos_; return v; }
            for (;;) {
                v.array.push_back(parse_value());
                skip_ws();
                if (pos_ < s_.size() && s_[pos_] == ',') { ++pos_; continue; }
                if (pos_ < s_.size() && s_[pos_] == ']') { ++pos_; return v; }
                fail("expected ',' or ']'");
            }
        }
        if (c == '"') { v.type = Json::Type::String; v.string = parse_string(); return v; }
        if (consume("true")) { v.type = Json::Type::Bool; v.boolean = true; return v; }
        if (consume("false")) { v.type = Json::Type::Bool; return v; }
        if (consume("null")) return v;
        std::size_t start = pos_;
        while (pos_ < s_.size() && std::strchr("+-0123456789.eE", s_[pos_]) != nullptr) ++pos_;
        if (start == pos_) fail("unexpected character");
        v.type = Json::Type::Number;
        v.number = std::stod(s_.substr(start, pos_ - start));
        return v;
    }
    std::string parse_string() {
        std::string out;
        ++pos_;  // opening quote
        while (pos_ < s_.size() && s_[pos_] != '"') {
            char c = s_[pos_++];
            if (c != '\\') { out += c; continue; }
            if (pos_ >= s_.size()) fail("unterminated escape");
            char e = s_[pos_++];
            switch (e) {
                case 'n': out += '\n'; break;
                case 't': out += '\t'; break;
                case 'r': out += '\r'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'u': {
                    if (pos_ + 4 > s_.size()) fail("short \\u escape");
                    unsigned code = static_cast<unsigned>(std::stoul(s_.substr(pos_, 4), nullptr, 16));
                    pos_ += 4;
                    if (code < 0x80) { out += static_cast<char>(code); }
                    else if (code < 0x800) { out += static_cast<char>(0xC0 | (code >> 6)); out += static_cast<char>(0x80 | (code & 0x3F)); }
                    else { out += static_cast<char>(0xE0 | (code >> 12)); out += static_cast<char>(0x80 | ((code >> 6) & 0x3F)); out += static_cast<char>(0x80 | (code & 0x3F)); }
                    break;
                }
                default: out += e;  // \" \\ \/
            }
        }
        if (pos_ >= s_.size()) fail("unterminated string");
        ++pos_;  // closing quote
        return out;
    }

    const std::string& s_;
    std::size_t pos_ = 0;
};

// SHA-256 (FIPS 180-4).
struct Sha256 {
    std::array<uint32_t, 8> h{0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
                              0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u};
    std::array<uint8_t, 64> block{};
    std::size_t used = 0;
    uint64_t bits = 0;

    static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

    void compress() {
        static const uint32_t k[64] = {
            0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
            0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
            0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
            0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
            0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
            0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
            0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
            0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
        uint32_t w[64];
        for (int i = 0; i < 16; ++i)
            w[i] = (uint32_t(block[4 * i]) << 24) | (uint32_t(block[4 * i + 1]) << 16) |
                   (uint32_t(block[4 * i + 2]) << 8) | uint32_t(block[4 * i + 3]);
        for (int i = 16; i < 64; ++i) {
            uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
            uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
        for (int i = 0; i < 64; ++i) {
            uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
            uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
        }
        h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
    }
    void update(const uint8_t* data, std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) {
            block[used++] = data[i];
            if (used == 64) { compress(); used = 0; }
        }
        bits += uint64_t(n) * 8;
    }
    std::string hex() {
        uint64_t total = bits;
        uint8_t one = 0x80, zero = 0;
        update(&one, 1);
        while (used != 56) update(&zero, 1);
        for (int i = 7; i >= 0; --i) { uint8_t byte = uint8_t(total >> (8 * i)); update(&byte, 1); }
        char out[65];
        for (int i = 0; i < 8; ++i) std::snprintf(out + 8 * i, 9, "%08x", h[i]);
        return std::string(out, 64);
    }
};

std::string major_minor(const std::string& version) {
    std::size_t first = version.find('.');
    if (first == std::string::npos) return version;
    std::size_t second = version.find('.', first + 1);
    return version.substr(0, second);
}

}  // namespace

const Json& Json::operator[](const std::string& key) const {
    if (type != Type::Object) return kNull;
    auto it = object.find(key);
    return it == object.end() ? kNull : it->second;
}

const Json& Json::at(std::size_t i) const {
    return (type == Type::Array && i < array.size()) ? array[i] : kNull;
}

Json parse_json(const std::string& text) { return Parser(text).document(); }

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::ostringstream buf;
    buf << in.rdbuf();
    return buf.str();
}

std::string sha256_bytes(const std::string& data) {
    Sha256 s;
    s.update(reinterpret_cast<const uint8_t*>(data.data()), data.size());
    return s.hex();
}

std::string sha256_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    Sha256 s;
    std::array<char, 1 << 16> buf{};
    while (in) {
        in.read(buf.data(), buf.size());
        s.update(reinterpret_cast<const uint8_t*>(buf.data()), static_cast<std::size_t>(in.gcount()));
    }
    return s.hex();
}

std::vector<std::string> check_manifest(const Json& m, const std::string& plan_path, const RuntimeFacts& facts,
                                        std::vector<std::string>* plugins) {
    std::vector<std::string> problems;
    if (m["kind"].str() != "trt-edge engine manifest")
        problems.push_back("not a trt-edge engine manifest");
    if (m["status"].str() != "built")
        problems.push_back("the manifest is a template (status '" + m["status"].str() +
                           "'): build the plan on the device first (build_on_device.sh)");
    const std::string want_sha = m["plan"]["sha256"].str();
    if (want_sha.empty()) {
        problems.push_back("the manifest records no plan sha256");
    } else if (sha256_file(plan_path) != want_sha) {
        problems.push_back("the plan's sha256 does not match its manifest: the plan was replaced or corrupted; rebuild it");
    }
    const std::string built_trt = m["tensorrt"].str();
    if (!facts.tensorrt.empty() && major_minor(built_trt) != major_minor(facts.tensorrt))
        problems.push_back("plan built with TensorRT " + built_trt + ", this machine has " + facts.tensorrt +
                           ": rebuild the plan here");
    const std::string built_cc = m["device"]["compute_capability"].str();
    if (!facts.compute_capability.empty() && built_cc != facts.compute_capability)
        problems.push_back("plan built for compute capability " + built_cc + ", this GPU is " +
                           facts.compute_capability + ": rebuild the plan on this device");
    if (m["host_code"].type == Json::Type::Bool && m["host_code"].boolean && !facts.allow_host_code)
        problems.push_back("the plan embeds host code (version-compatible plan or serialized plugins); "
                           "pass --allow-host-code only if you trust where it came from");
    const Json& libs = m["plugins"];
    for (std::size_t i = 0; i < libs.array.size(); ++i) {
        const std::string path = libs.at(i)["path"].str();
        const std::string sha = libs.at(i)["sha256"].str();
        try {
            if (sha256_file(path) != sha) {
                problems.push_back("plugin library " + path + " changed since the plan was built: rebuild the plan");
                continue;
            }
        } catch (const std::exception&) {
            problems.push_back("plugin library " + path + " is missing");
            continue;
        }
        if (plugins != nullptr) plugins->push_back(path);
    }
    return problems;
}

}  // namespace trt_edge
