// The tokenizers of a Hugging Face tokenizer.json, reimplemented so a C++ app needs no Python. Shared by every
// model type: added (special) tokens matched on the raw text (with their lstrip/rstrip), truncation, and the
// post-processor's specials (TemplateProcessing, BertProcessing, RobertaProcessing).
// - WordPiece (BERT family): BertNormalizer (clean text, CJK characters split, accents stripped by NFD +
//   dropping combining marks, lowercase), BertPreTokenizer (whitespace, then every punctuation character
//   alone), greedy longest match with the "##" continuation, [UNK] for a word longer than
//   max_input_chars_per_word or with no match.
// - BPE with the ByteLevel pre-tokenizer (RoBERTa/GPT-2 family): the GPT-2 split (contractions, letters,
//   numbers, other symbols, each with one optional leading space; whitespace runs), bytes mapped to the
//   byte-level alphabet, merges applied lowest rank first.
// - Unigram (XLM-R / SentencePiece family): the Precompiled normaliser (SentencePiece's compiled character
//   map: a double-array trie over UTF-8, applied per extended grapheme cluster as the Python tokenizer does),
//   Replace and Strip normalisers, the Metaspace pre-tokenizer ("▁"), and the best-scoring segmentation
//   (Viterbi over the vocabulary's log-probabilities, unknown characters fused into one unknown token).
// Unicode properties (categories, canonical decomposition, lower case) come from utf8proc (Debian's
// libutf8proc-dev), not from tables of our own. Proven identical to the Python tokenizers on the texts of
// tests/cpp (ctest `tokenizer_parity`, `bpe_tokenizer_parity`, `unigram_tokenizer_parity`).
#include <utf8proc.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "manifest.hpp"
#include "trt_edge/trt_edge.hpp"

namespace trt_edge {

namespace {

using Codepoints = std::vector<utf8proc_int32_t>;

Codepoints decode_utf8(const std::string& text) {
    Codepoints out;
    out.reserve(text.size());
    const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
    utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(text.size());
    while (left > 0) {
        utf8proc_int32_t c = 0;
        const utf8proc_ssize_t n = utf8proc_iterate(p, left, &c);
        if (n < 0) throw Error("the text is not valid UTF-8 (at byte " + std::to_string(text.size() - left) + ")");
        out.push_back(c);
        p += n;
        left -= n;
    }
    return out;
}

void append_utf8(std::string& out, utf8proc_int32_t c) {
    utf8proc_uint8_t buf[4];
    const utf8proc_ssize_t n = utf8proc_encode_char(c, buf);
    out.append(reinterpret_cast<const char*>(buf), static_cast<std::size_t>(n));
}

std::string encode_utf8(const Codepoints& cps, std::size_t begin, std::size_t end) {
    std::string out;
    for (std::size_t i = begin; i < end; ++i) append_utf8(out, cps[i]);
    return out;
}

// Rust's char::is_whitespace (the Unicode White_Space property), which the Python tokenizer uses.
bool is_whitespace(utf8proc_int32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

bool is_control(utf8proc_int32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return false;
    switch (utf8proc_category(c)) {
        case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CN:
        case UTF8PROC_CATEGORY_CO: case UTF8PROC_CATEGORY_CS: return true;
        default: return false;
    }
}

bool is_punctuation(utf8proc_int32_t c) {
    if (c < 0x80) return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
    switch (utf8proc_category(c)) {
        case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS: case UTF8PROC_CATEGORY_PE:
        case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF: case UTF8PROC_CATEGORY_PO: return true;
        default: return false;
    }
}

bool is_chinese(utf8proc_int32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

bool is_letter(utf8proc_int32_t c) {
    switch (utf8proc_category(c)) {
        case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
        case UTF8PROC_CATEGORY_LO: return true;
        default: return false;
    }
}

bool is_number(utf8proc_int32_t c) {
    switch (utf8proc_category(c)) {
        case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO: return true;
        default: return false;
    }
}

struct AddedToken {
    std::string content;
    int64_t id;
    bool lstrip = false;
    bool rstrip = false;
};

using Pieces = std::vector<std::pair<std::string, int64_t>>;

// What every tokenizer.json shares: the vocab, added tokens, truncation and the post-processor.
class JsonTokenizer : public Tokenizer {
public:
    JsonTokenizer(const Json& doc, const std::string& path) : path_(path) {
        const Json& model = doc["model"];
        for (const auto& [token, id] : model["vocab"].object) vocab_[token] = static_cast<int64_t>(id.number);
        for (std::size_t i = 0; i < model["vocab"].array.size(); ++i)  // Unigram: [piece, score] by id
            vocab_.emplace(model["vocab"].array[i].at(0).str(), static_cast<int64_t>(i));
        if (vocab_.empty()) throw Error(path + ": the " + model["type"].str() + " model has no vocab");
        for (const Json& t : doc["added_tokens"].array) {
            const int64_t id = static_cast<int64_t>(t["id"].number);
            vocab_.emplace(t["content"].str(), id);
            if (t["normalized"].type == Json::Type::Bool && t["normalized"].boolean) continue;  // matched as text
            added_.push_back({t["content"].str(), id, t["lstrip"].boolean, t["rstrip"].boolean});
        }
        // Longest first, so a token that contains another one wins at the same position.
        std::sort(added_.begin(), added_.end(),
                  [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });

        const Json& post = doc["post_processor"];
        const std::string post_type = post["type"].str();
        if (post_type == "TemplateProcessing") {
            bool seen_sequence = false;
            for (const Json& piece : post["single"].array) {
                if (!piece["Sequence"].is_null()) { seen_sequence = true; continue; }
                const Json& special = piece["SpecialToken"];
                const std::string name = special["id"].str();
                const Json& entry = post["special_tokens"][name];
                std::vector<int64_t> ids;
                for (const Json& id : entry["ids"].array) ids.push_back(static_cast<int64_t>(id.number));
                if (ids.empty()) ids.push_back(id_of(name));
                for (const int64_t id : ids) {
                    (seen_sequence ? suffix_ : prefix_).push_back({name, id});
                    (seen_sequence ? suffix_types_ : prefix_types_).push_back(static_cast<int64_t>(special["type_id"].number));
                }
            }
        } else if (post_type == "BertProcessing" || post_type == "RobertaProcessing") {
            prefix_.push_back({post["cls"].at(0).str(), static_cast<int64_t>(post["cls"].at(1).number)});
            suffix_.push_back({post["sep"].at(0).str(), static_cast<int64_t>(post["sep"].at(1).number)});
            prefix_types_.push_back(0);
            suffix_types_.push_back(0);
        } else if (!post.is_null()) {
            throw Error(path + ": post-processor " + post_type + " is not implemented");
        }
    }

    Encoding encode(const std::string& text, std::size_t max_length) const override {
        Pieces pieces;
        // Added tokens are found in the raw text first; the text between them is normalised and split.
        std::size_t start = 0, pos = 0;
        while (pos < text.size()) {
            const AddedToken* hit = nullptr;
            for (const AddedToken& t : added_) {
                if (!t.content.empty() && text.compare(pos, t.content.size(), t.content) == 0) { hit = &t; break; }
            }
            if (hit == nullptr) { ++pos; continue; }
            std::size_t before = pos;
            if (hit->lstrip) while (before > start && is_space_byte(text[before - 1])) --before;
            segment(text.substr(start, before - start), pieces, start == 0);
            pieces.push_back({hit->content, hit->id});
            pos += hit->content.size();
            if (hit->rstrip) while (pos < text.size() && is_space_byte(text[pos])) ++pos;
            start = pos;
        }
        segment(text.substr(start), pieces, start == 0);

        const std::size_t specials = prefix_.size() + suffix_.size();
        const std::size_t room = max_length > specials ? max_length - specials : 0;
        if (pieces.size() > room) pieces.resize(room);
        Encoding enc;
        auto add = [&enc](const std::string& token, int64_t id, int64_t type) {
            enc.tokens.push_back(token);
            enc.input_ids.push_back(id);
            enc.attention_mask.push_back(1);
            enc.token_type_ids.push_back(type);
        };
        for (std::size_t i = 0; i < prefix_.size(); ++i) add(prefix_[i].first, prefix_[i].second, prefix_types_[i]);
        for (const auto& [token, id] : pieces) add(token, id, 0);
        for (std::size_t i = 0; i < suffix_.size(); ++i) add(suffix_[i].first, suffix_[i].second, suffix_types_[i]);
        return enc;
    }

protected:
    // The tokens of one stretch of text between added tokens (`first`: it starts the text).
    virtual void segment(const std::string& text, Pieces& pieces, bool first) const = 0;

    // ASCII whitespace only: lstrip/rstrip around an added token (RoBERTa's <mask>).
    static bool is_space_byte(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

    int64_t id_of(const std::string& token) const {
        const auto it = vocab_.find(token);
        if (it == vocab_.end()) throw Error(path_ + ": token " + token + " is not in the vocab");
        return it->second;
    }

    std::string path_;
    std::unordered_map<std::string, int64_t> vocab_;

private:
    std::vector<AddedToken> added_;
    Pieces prefix_, suffix_;
    std::vector<int64_t> prefix_types_, suffix_types_;
};

class WordPieceTokenizer final : public JsonTokenizer {
public:
    WordPieceTokenizer(const Json& doc, const std::string& path) : JsonTokenizer(doc, path) {
        const Json& model = doc["model"];
        prefix_ = model["continuing_subword_prefix"].str("##");
        if (model["max_input_chars_per_word"].type == Json::Type::Number)
            max_chars_ = static_cast<std::size_t>(model["max_input_chars_per_word"].number);
        unk_token_ = model["unk_token"].str("[UNK]");
        unk_ = id_of(unk_token_);

        const Json& norm = doc["normalizer"];
        if (!norm.is_null()) {
            if (norm["type"].str() != "BertNormalizer")
                throw Error(path + ": normalizer " + norm["type"].str() + " is not implemented (BertNormalizer is)");
            clean_text_ = norm["clean_text"].type != Json::Type::Bool || norm["clean_text"].boolean;
            chinese_ = norm["handle_chinese_chars"].type != Json::Type::Bool || norm["handle_chinese_chars"].boolean;
            lowercase_ = norm["lowercase"].type != Json::Type::Bool || norm["lowercase"].boolean;
            // strip_accents null follows lowercase, as in the Python tokenizer.
            strip_accents_ = norm["strip_accents"].type == Json::Type::Bool ? norm["strip_accents"].boolean : lowercase_;
        }
        const std::string pre = doc["pre_tokenizer"]["type"].str();
        if (pre != "BertPreTokenizer")
            throw Error(path + ": pre-tokenizer " + (pre.empty() ? "none" : pre) +
                        " is not implemented for WordPiece (BertPreTokenizer is)");
    }

protected:
    void segment(const std::string& text, Pieces& pieces, bool) const override {
        if (text.empty()) return;
        const Codepoints cps = normalize(text);
        std::size_t i = 0;
        while (i < cps.size()) {
            if (is_whitespace(cps[i])) { ++i; continue; }
            std::size_t j = i;
            if (is_punctuation(cps[i])) {
                j = i + 1;
            } else {
                while (j < cps.size() && !is_whitespace(cps[j]) && !is_punctuation(cps[j])) ++j;
            }
            word(cps, i, j, pieces);
            i = j;
        }
    }

private:
    Codepoints normalize(const std::string& text) const {
        Codepoints in = decode_utf8(text), out;
        out.reserve(in.size());
        for (const utf8proc_int32_t c : in) {
            if (clean_text_) {
                if (c == 0 || c == 0xFFFD || is_control(c)) continue;
                if (is_whitespace(c)) { out.push_back(' '); continue; }
            }
            if (chinese_ && is_chinese(c)) {
                out.push_back(' '); out.push_back(c); out.push_back(' ');
                continue;
            }
            out.push_back(c);
        }
        if (strip_accents_) {
            Codepoints decomposed;
            decomposed.reserve(out.size());
            for (const utf8proc_int32_t c : out) {
                utf8proc_int32_t buf[32];
                int last_boundclass = 0;
                const utf8proc_ssize_t n = utf8proc_decompose_char(c, buf, 32, UTF8PROC_DECOMPOSE, &last_boundclass);
                if (n < 0 || n > 32) { decomposed.push_back(c); continue; }
                decomposed.insert(decomposed.end(), buf, buf + n);
            }
            // Canonical ordering of combining marks does not matter here: every Mn is dropped below, and the
            // other characters keep their order.
            out.clear();
            for (const utf8proc_int32_t c : decomposed)
                if (utf8proc_category(c) != UTF8PROC_CATEGORY_MN) out.push_back(c);
        }
        if (lowercase_) {
            Codepoints lowered;
            lowered.reserve(out.size());
            for (const utf8proc_int32_t c : out) {
                if (c == 0x0130) { lowered.push_back('i'); lowered.push_back(0x0307); continue; }  // İ: two chars
                lowered.push_back(utf8proc_tolower(c));
            }
            out.swap(lowered);
        }
        return out;
    }

    void word(const Codepoints& cps, std::size_t begin, std::size_t end, Pieces& pieces) const {
        if (end - begin > max_chars_) { pieces.push_back({unk_token_, unk_}); return; }
        Pieces found;
        std::size_t start = begin;
        while (start < end) {
            std::size_t stop = end;
            bool matched = false;
            while (stop > start) {
                std::string candidate = (start > begin ? prefix_ : std::string()) + encode_utf8(cps, start, stop);
                const auto it = vocab_.find(candidate);
                if (it != vocab_.end()) {
                    found.push_back({std::move(candidate), it->second});
                    matched = true;
                    break;
                }
                --stop;
            }
            if (!matched) { pieces.push_back({unk_token_, unk_}); return; }
            start = stop;
        }
        pieces.insert(pieces.end(), found.begin(), found.end());
    }

    std::string prefix_ = "##";
    std::size_t max_chars_ = 100;
    int64_t unk_ = 0;
    std::string unk_token_;
    bool clean_text_ = false, chinese_ = false, lowercase_ = false, strip_accents_ = false;
};

// GPT-2's byte-to-character table: printable Latin-1 bytes stand for themselves, the others are shifted to
// U+0100 and up, so every byte sequence is a string of visible characters.
std::vector<std::string> byte_alphabet() {
    std::vector<std::string> table(256);
    int shifted = 0;
    for (int b = 0; b < 256; ++b) {
        const bool visible = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        std::string s;
        append_utf8(s, visible ? b : 256 + shifted++);
        table[static_cast<std::size_t>(b)] = s;
    }
    return table;
}

class ByteLevelBpeTokenizer final : public JsonTokenizer {
public:
    ByteLevelBpeTokenizer(const Json& doc, const std::string& path) : JsonTokenizer(doc, path), bytes_(byte_alphabet()) {
        const Json& model = doc["model"];
        if (!model["dropout"].is_null() && model["dropout"].number != 0.0)
            throw Error(path + ": BPE dropout is not implemented (it makes tokenization random)");
        if (!model["continuing_subword_prefix"].str().empty() || !model["end_of_word_suffix"].str().empty())
            throw Error(path + ": BPE with a subword prefix or word suffix is not implemented (byte-level BPE is)");
        ignore_merges_ = model["ignore_merges"].boolean;
        const std::string unk = model["unk_token"].str();
        if (!unk.empty()) unk_ = id_of(unk);
        int rank = 0;
        for (const Json& m : model["merges"].array) {
            std::string left, right;
            if (m.type == Json::Type::Array) {
                left = m.at(0).str();
                right = m.at(1).str();
            } else {
                const std::string line = m.str();
                const std::size_t sp = line.find(' ');
                if (sp == std::string::npos) throw Error(path + ": malformed merge " + line);
                left = line.substr(0, sp);
                right = line.substr(sp + 1);
            }
            ranks_.emplace(left + '\x01' + right, rank++);
        }
        if (!doc["normalizer"].is_null())
            throw Error(path + ": normalizer " + doc["normalizer"]["type"].str() +
                        " is not implemented for BPE (byte-level BPE without one is)");
        const Json& pre = doc["pre_tokenizer"];
        if (pre["type"].str() != "ByteLevel")
            throw Error(path + ": pre-tokenizer " + (pre["type"].str().empty() ? "none" : pre["type"].str()) +
                        " is not implemented for BPE (ByteLevel is)");
        add_prefix_space_ = pre["add_prefix_space"].boolean;
        use_regex_ = pre["use_regex"].type != Json::Type::Bool || pre["use_regex"].boolean;
    }

protected:
    void segment(const std::string& text, Pieces& pieces, bool) const override {
        if (text.empty()) return;
        Codepoints cps = decode_utf8(text);
        if (add_prefix_space_ && cps.front() != ' ') cps.insert(cps.begin(), ' ');
        std::size_t i = 0;
        while (i < cps.size()) {
            const std::size_t j = use_regex_ ? split_end(cps, i) : cps.size();
            word(encode_utf8(cps, i, j), pieces);
            i = j;
        }
    }

private:
    static bool is_ws(utf8proc_int32_t c) { return is_whitespace(c); }

    // The end of the GPT-2 pattern's match at i:
    //   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
    static std::size_t split_end(const Codepoints& c, std::size_t i) {
        const std::size_t n = c.size();
        if (c[i] == '\'' && i + 1 < n) {
            for (const char* suffix : {"s", "t", "re", "ve", "m", "ll", "d"}) {
                std::size_t k = 0;
                while (suffix[k] != '\0' && i + 1 + k < n && c[i + 1 + k] == static_cast<utf8proc_int32_t>(suffix[k])) ++k;
                if (suffix[k] == '\0') return i + 1 + k;
            }
        }
        std::size_t j = i;
        if (c[j] == ' ' && j + 1 < n && !is_ws(c[j + 1])) ++j;  // the optional leading space
        if (!is_ws(c[j])) {
            const int kind = is_letter(c[j]) ? 0 : is_number(c[j]) ? 1 : 2;
            std::size_t k = j;
            while (k < n && !is_ws(c[k]) &&
                   (kind == 0 ? is_letter(c[k]) : kind == 1 ? is_number(c[k]) : !is_letter(c[k]) && !is_number(c[k])))
                ++k;
            return k;
        }
        std::size_t k = i;
        while (k < n && is_ws(c[k])) ++k;
        if (k == n || k - i == 1) return k;  // to the end, or one whitespace before a non-space (\s+)
        return k - 1;                        // leave the last one to lead the next word (\s+(?!\S))
    }

    void word(const std::string& raw, Pieces& pieces) const {
        std::string mapped;
        for (const char byte : raw) mapped += bytes_[static_cast<unsigned char>(byte)];
        if (ignore_merges_) {
            const auto it = vocab_.find(mapped);
            if (it != vocab_.end()) { pieces.push_back({mapped, it->second}); return; }
        }
        std::vector<std::string> symbols;
        const Codepoints cps = decode_utf8(mapped);
        for (std::size_t k = 0; k < cps.size(); ++k) symbols.push_back(encode_utf8(cps, k, k + 1));
        for (;;) {
            int best = INT_MAX;
            std::size_t at = 0;
            for (std::size_t k = 0; k + 1 < symbols.size(); ++k) {
                const auto it = ranks_.find(symbols[k] + '\x01' + symbols[k + 1]);
                if (it != ranks_.end() && it->second < best) { best = it->second; at = k; }
            }
            if (best == INT_MAX) break;
            symbols[at] += symbols[at + 1];
            symbols.erase(symbols.begin() + static_cast<std::ptrdiff_t>(at) + 1);
        }
        for (const std::string& s : symbols) {
            const auto it = vocab_.find(s);
            if (it != vocab_.end()) pieces.push_back({s, it->second});
            else if (unk_ >= 0) pieces.push_back({s, unk_});
        }
    }

    std::vector<std::string> bytes_;
    std::unordered_map<std::string, int> ranks_;
    bool ignore_merges_ = false, add_prefix_space_ = false, use_regex_ = true;
    int64_t unk_ = -1;
};


std::vector<uint8_t> base64_decode(const std::string& text, const std::string& path) {
    std::vector<uint8_t> out;
    uint32_t buffer = 0;
    int bits = 0;
    for (const char ch : text) {
        int v;
        if (ch >= 'A' && ch <= 'Z') v = ch - 'A';
        else if (ch >= 'a' && ch <= 'z') v = ch - 'a' + 26;
        else if (ch >= '0' && ch <= '9') v = ch - '0' + 52;
        else if (ch == '+') v = 62;
        else if (ch == '/') v = 63;
        else if (ch == '=') break;
        else throw Error(path + ": precompiled_charsmap is not base64");
        buffer = (buffer << 6) | static_cast<uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<uint8_t>((buffer >> bits) & 0xFF));
        }
    }
    return out;
}

// SentencePiece's precompiled character map: a Darts double-array trie from UTF-8 sequences to offsets of
// NUL-terminated replacements in the blob that follows it.
class PrecompiledMap {
public:
    PrecompiledMap(const std::string& base64, const std::string& path) {
        const std::vector<uint8_t> blob = base64_decode(base64, path);
        if (blob.size() < 4) throw Error(path + ": precompiled_charsmap is too short");
        uint32_t trie_bytes = 0;
        std::memcpy(&trie_bytes, blob.data(), 4);  // little-endian, as the build machines and Jetsons are
        if (trie_bytes % 4 != 0 || 4 + static_cast<std::size_t>(trie_bytes) > blob.size())
            throw Error(path + ": precompiled_charsmap's trie size is inconsistent");
        array_.resize(trie_bytes / 4);
        std::memcpy(array_.data(), blob.data() + 4, trie_bytes);
        normalized_.assign(reinterpret_cast<const char*>(blob.data()) + 4 + trie_bytes, blob.size() - 4 - trie_bytes);
    }

    // The replacement of the shortest entry that is a prefix of `chunk` (what the Python tokenizer uses), or
    // false when none is.
    bool transform(const std::string& chunk, std::string& out) const {
        if (array_.empty()) return false;
        std::size_t pos = 0;
        uint32_t unit = array_[0];
        pos ^= offset(unit);
        for (const char ch : chunk) {
            const auto c = static_cast<unsigned char>(ch);
            if (c == 0) break;
            pos ^= c;
            if (pos >= array_.size()) return false;
            unit = array_[pos];
            if ((unit & ((1u << 31) | 0xFFu)) != c) return false;
            pos ^= offset(unit);
            if (pos >= array_.size()) return false;
            if (((unit >> 8) & 1u) == 1u) {
                const std::size_t index = array_[pos] & ((1u << 31) - 1);
                if (index > normalized_.size()) return false;
                const std::size_t end = normalized_.find('\0', index);
                out = normalized_.substr(index, (end == std::string::npos ? normalized_.size() : end) - index);
                return true;
            }
        }
        return false;
    }

private:
    static std::size_t offset(uint32_t unit) { return (unit >> 10) << ((unit & (1u << 9)) >> 6); }
    std::vector<uint32_t> array_;
    std::string normalized_;
};

class UnigramTokenizer final : public JsonTokenizer {
public:
    UnigramTokenizer(const Json& doc, const std::string& path) : JsonTokenizer(doc, path) {
        const Json& model = doc["model"];
        if (model["byte_fallback"].boolean) throw Error(path + ": Unigram byte_fallback is not implemented");
        for (const Json& entry : model["vocab"].array) {
            const std::string piece = entry.at(0).str();
            const double score = entry.at(1).number;
            pieces_.emplace(piece, std::make_pair(static_cast<int64_t>(pieces_.size()), score));
            max_piece_bytes_ = std::max(max_piece_bytes_, piece.size());
            min_score_ = std::min(min_score_, score);
        }
        if (pieces_.empty()) throw Error(path + ": the Unigram model has no vocab");
        if (model["unk_id"].type != Json::Type::Number) throw Error(path + ": the Unigram model has no unk_id");
        unk_ = static_cast<int64_t>(model["unk_id"].number);
        read_normalizer(doc["normalizer"], path);
        const Json& pre = doc["pre_tokenizer"];
        if (pre["type"].str() != "Metaspace")
            throw Error(path + ": pre-tokenizer " + (pre["type"].str().empty() ? "none" : pre["type"].str()) +
                        " is not implemented for Unigram (Metaspace is)");
        replacement_ = pre["replacement"].str("\xE2\x96\x81");
        std::string scheme = pre["prepend_scheme"].str();
        if (scheme.empty()) scheme = pre["add_prefix_space"].type == Json::Type::Bool && !pre["add_prefix_space"].boolean ? "never" : "always";
        if (scheme != "always" && scheme != "first" && scheme != "never")
            throw Error(path + ": Metaspace prepend_scheme " + scheme + " is not implemented");
        prepend_ = scheme;
        split_ = pre["split"].type != Json::Type::Bool || pre["split"].boolean;
    }

protected:
    void segment(const std::string& text, Pieces& pieces, bool first) const override {
        if (text.empty()) return;
        std::string norm = normalize(text);
        if (norm.empty()) return;
        std::string meta;
        for (const char ch : norm) {
            if (ch == ' ') meta += replacement_;
            else meta += ch;
        }
        if ((prepend_ == "always" || (prepend_ == "first" && first)) && meta.compare(0, replacement_.size(), replacement_) != 0)
            meta = replacement_ + meta;
        if (!split_) { viterbi(meta, pieces); return; }
        std::size_t start = 0;
        for (std::size_t pos = replacement_.size(); pos <= meta.size(); ++pos) {
            if (pos == meta.size() || meta.compare(pos, replacement_.size(), replacement_) == 0) {
                if (pos > start) viterbi(meta.substr(start, pos - start), pieces);
                start = pos;
            }
        }
    }

private:
    void read_normalizer(const Json& n, const std::string& path) {
        if (n.is_null()) return;
        const std::string type = n["type"].str();
        if (type == "Sequence") {
            for (const Json& part : n["normalizers"].array) read_normalizer(part, path);
        } else if (type == "Precompiled") {
            if (!n["precompiled_charsmap"].str().empty())
                steps_.push_back({Step::Precompiled, "", "", std::make_shared<PrecompiledMap>(n["precompiled_charsmap"].str(), path)});
        } else if (type == "Replace") {
            const std::string regex = n["pattern"]["Regex"].str(), literal = n["pattern"]["String"].str();
            if (!literal.empty()) steps_.push_back({Step::Replace, literal, n["content"].str(), nullptr});
            else if (regex == " {2,}") steps_.push_back({Step::Spaces, "", n["content"].str(), nullptr});
            else throw Error(path + ": Replace pattern " + regex + " is not implemented (\" {2,}\" and strings are)");
        } else if (type == "Strip") {
            steps_.push_back({Step::Strip, n["left"].boolean ? "l" : "", n["right"].boolean ? "r" : "", nullptr});
        } else {
            throw Error(path + ": normalizer " + type + " is not implemented for Unigram (Precompiled, Replace, Strip are)");
        }
    }

    std::string normalize(const std::string& text) const {
        std::string s = text;
        for (const Step& step : steps_) {
            if (step.kind == Step::Precompiled) s = precompiled(s, *step.map);
            else if (step.kind == Step::Replace) s = replace_all(s, step.a, step.b);
            else if (step.kind == Step::Spaces) s = squeeze_spaces(s, step.b);
            else s = strip(s, !step.a.empty(), !step.b.empty());
        }
        return s;
    }

    static std::string precompiled(const std::string& text, const PrecompiledMap& map) {
        const Codepoints cps = decode_utf8(text);
        std::string out, norm;
        std::size_t i = 0;
        while (i < cps.size()) {
            std::size_t j = i + 1;  // the extended grapheme cluster starting at i
            utf8proc_int32_t state = 0;
            while (j < cps.size() && !utf8proc_grapheme_break_stateful(cps[j - 1], cps[j], &state)) ++j;
            const std::string grapheme = encode_utf8(cps, i, j);
            if (grapheme.size() < 6 && map.transform(grapheme, norm)) {
                out += norm;
            } else {
                for (std::size_t k = i; k < j; ++k) {
                    const std::string part = encode_utf8(cps, k, k + 1);
                    out += map.transform(part, norm) ? norm : part;
                }
            }
            i = j;
        }
        return out;
    }

    static std::string replace_all(const std::string& s, const std::string& from, const std::string& to) {
        std::string out;
        std::size_t pos = 0;
        for (std::size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) out += s.substr(pos, hit - pos) + to;
        return out + s.substr(pos);
    }

    static std::string squeeze_spaces(const std::string& s, const std::string& to) {
        std::string out;
        for (std::size_t i = 0; i < s.size();) {
            std::size_t j = i;
            while (j < s.size() && s[j] == ' ') ++j;
            if (j - i >= 2) { out += to; i = j; }
            else { out += s[i]; ++i; }
        }
        return out;
    }

    static std::string strip(const std::string& s, bool left, bool right) {
        const Codepoints cps = decode_utf8(s);
        std::size_t b = 0, e = cps.size();
        if (left) while (b < e && is_whitespace(cps[b])) ++b;
        if (right) while (e > b && is_whitespace(cps[e - 1])) --e;
        return encode_utf8(cps, b, e);
    }

    // The best-scoring segmentation of one word (byte positions, characters never split).
    void viterbi(const std::string& word, Pieces& pieces) const {
        struct Node { int64_t id = -1; double score = 0.0; std::size_t from = 0; bool set = false; };
        const std::size_t n = word.size();
        std::vector<Node> best(n + 1);
        best[0].set = true;
        const double unk_score = min_score_ - 10.0;
        std::size_t at = 0;
        while (at < n) {
            const auto lead = static_cast<unsigned char>(word[at]);
            const std::size_t mblen = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
            bool single = false;
            for (std::size_t len = 1; len <= max_piece_bytes_ && at + len <= n; ++len) {
                const auto it = pieces_.find(word.substr(at, len));
                if (it == pieces_.end()) continue;
                const double score = best[at].score + it->second.second;
                Node& target = best[at + len];
                if (!target.set || score > target.score) target = {it->second.first, score, at, true};
                if (len == mblen) single = true;
            }
            if (!single) {
                const double score = best[at].score + unk_score;
                Node& target = best[std::min(at + mblen, n)];
                if (!target.set || score > target.score) target = {unk_, score, at, true};
            }
            at += mblen;
        }
        Pieces reversed;
        std::string unknown;  // consecutive unknown pieces are fused into one
        for (std::size_t end = n; end > 0;) {
            const Node& node = best[end];
            const std::string piece = word.substr(node.from, end - node.from);
            if (node.id == unk_) {
                unknown = piece + unknown;
            } else {
                if (!unknown.empty()) { reversed.push_back({unknown, unk_}); unknown.clear(); }
                reversed.push_back({piece, node.id});
            }
            end = node.from;
        }
        if (!unknown.empty()) reversed.push_back({unknown, unk_});
        pieces.insert(pieces.end(), reversed.rbegin(), reversed.rend());
    }

    struct Step {
        enum Kind { Precompiled, Replace, Spaces, Strip } kind;
        std::string a, b;
        std::shared_ptr<PrecompiledMap> map;
    };
    std::unordered_map<std::string, std::pair<int64_t, double>> pieces_;
    std::size_t max_piece_bytes_ = 0;
    double min_score_ = 0.0;
    int64_t unk_ = 0;
    std::vector<Step> steps_;
    std::string replacement_, prepend_;
    bool split_ = true;
};

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::from_file(const std::string& path) {
    Json doc;
    try {
        doc = parse_json(read_file(path));
    } catch (const Error&) {
        throw;
    } catch (const std::exception& e) {
        throw Error(path + ": " + e.what());
    }
    const std::string type = doc["model"]["type"].str();
    if (type == "WordPiece") return std::make_unique<WordPieceTokenizer>(doc, path);
    if (type == "BPE") return std::make_unique<ByteLevelBpeTokenizer>(doc, path);
    if (type == "Unigram") return std::make_unique<UnigramTokenizer>(doc, path);
    throw Error(path + ": tokenizer model " + (type.empty() ? "(none)" : type) +
                " is not implemented in libtrt_edge (WordPiece, byte-level BPE and Unigram are); tokenize in Python for it");
}

}  // namespace trt_edge
