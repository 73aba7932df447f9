// Reading and checking a trt-edge engine manifest (model.plan.json) before a plan is deserialized.
// Self-contained: a small JSON reader and SHA-256, so the check builds without TensorRT and is tested on
// the build machine (tests/examples/test_cpp_manifest.py). libtrt_edge uses the same reader for manifest.json,
// SHA256SUMS, tokenizer.json and preprocessor_config.json; its TensorRT backend adds the TensorRT part.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace trt_edge {

struct Json {
    enum class Type { Null, Bool, Number, String, Array, Object };
    Type type = Type::Null;
    bool boolean = false;
    double number = 0.0;
    std::string string;
    std::vector<Json> array;
    std::map<std::string, Json> object;

    // Member access that never throws: a missing key gives a Null value.
    const Json& operator[](const std::string& key) const;
    const Json& at(std::size_t i) const;
    bool is_null() const { return type == Type::Null; }
    std::string str(const std::string& fallback = "") const { return type == Type::String ? string : fallback; }
};

// Parses JSON text; throws std::runtime_error with the byte offset on malformed input.
Json parse_json(const std::string& text);

// Lower-case hex SHA-256 of a file's bytes; throws std::runtime_error if it cannot be read.
std::string sha256_file(const std::string& path);
std::string sha256_bytes(const std::string& data);

// What the running machine offers, compared with the manifest.
struct RuntimeFacts {
    std::string tensorrt;            // "10.3.0"
    std::string compute_capability;  // "8.7"
    bool allow_host_code = false;
};

// Every reason the plan must not be loaded here (empty when it may). Also checks the plan's and every
// plugin library's sha256. `plugins` receives the plugin library paths to load before deserializing.
std::vector<std::string> check_manifest(const Json& manifest, const std::string& plan_path,
                                        const RuntimeFacts& facts, std::vector<std::string>* plugins);

std::string read_file(const std::string& path);

}  // namespace trt_edge
