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
// Unicode properties (categories, canonical decomposition, lower case) come from utf8proc (Debian's
// libutf8proc-dev), not from tables of our own. Proven identical to the Python tokenizers on the texts of
// tests/cpp (ctest `tokenizer_parity`, `bpe_tokenizer_parity`).
#include <utf8proc.h>

#include <algorithm>
#include <climits>
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
            segment(text.substr(start, before - start), pieces);
            pieces.push_back({hit->content, hit->id});
            pos += hit->content.size();
            if (hit->rstrip) while (pos < text.size() && is_space_byte(text[pos])) ++pos;
            start = pos;
        }
        segment(text.substr(start), pieces);

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
    // The tokens of one stretch of text between added tokens.
    virtual void segment(const std::string& text, Pieces& pieces) const = 0;

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
    void segment(const std::string& text, Pieces& pieces) const override {
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
    void segment(const std::string& text, Pieces& pieces) const override {
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
    throw Error(path + ": tokenizer model " + (type.empty() ? "(none)" : type) +
                " is not implemented in libtrt_edge (WordPiece and byte-level BPE are); tokenize in Python for it");
}

}  // namespace trt_edge
