// Audio: WAV decoding, resampling and the feature extractors of preprocessor_config.json, each matching the
// path the Python runtime takes (trt_edge.tasks.audio_data / audio_classification) so a C++ app hears a clip
// as `trt-edge run --audio` does:
// - decoding as soundfile (libsndfile) returns float32: PCM scaled by 2^-(bits-1), unsigned 8-bit centred,
//   float kept; channels averaged to mono; a WAV whose data chunk is cut short refused, as Python refuses it;
// - resampling as scipy.signal.resample_poly (Kaiser-windowed sinc, beta 5, 10 zero crossings per side of the
//   larger factor, zero padding at both ends), the duration kept to the sample, centre-crop / zero-pad;
// - Wav2Vec2FeatureExtractor (raw waveform, zero-mean unit-variance), WhisperFeatureExtractor (what runs with
//   torch installed: torch.stft with a periodic Hann window, reflect-padded and centred, power, Slaney mel
//   filters, log10, clamp to max - 8, (x + 4) / 4) and ASTFeatureExtractor without torchaudio (transformers'
//   numpy spectrogram: 25 ms frames every 10 ms, DC removed, pre-emphasis 0.97, symmetric Hann window,
//   512-point FFT, Kaldi mel filters triangular in mel space, natural log, padded/truncated to max_length
//   frames, normalised with the extractor's mean and 2 x std).
// Features are computed in double and rounded where Python rounds (its complex64 spectrum, float32 output);
// tests/cpp measures the difference (docs/cpp.md).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "manifest.hpp"
#include "trt_edge/trt_edge.hpp"

namespace trt_edge {

namespace {

constexpr int kMinRate = 4000, kMaxRate = 384000, kMaxResampleFactor = 1000;  // as trt_edge.tasks.audio_data
constexpr double kFrameSeconds = 0.025;  // the shortest analysis window (audio_classification.FRAME_SECONDS)
constexpr double kPi = 3.14159265358979323846;

uint32_t u32(const std::string& d, std::size_t at) {
    return static_cast<uint32_t>(static_cast<uint8_t>(d[at])) | static_cast<uint32_t>(static_cast<uint8_t>(d[at + 1])) << 8 |
           static_cast<uint32_t>(static_cast<uint8_t>(d[at + 2])) << 16 | static_cast<uint32_t>(static_cast<uint8_t>(d[at + 3])) << 24;
}
uint16_t u16(const std::string& d, std::size_t at) {
    return static_cast<uint16_t>(static_cast<uint8_t>(d[at]) | static_cast<uint8_t>(d[at + 1]) << 8);
}

// Python's round(): half to even (the default rounding mode of nearbyint).
int64_t round_half_even(double x) { return static_cast<int64_t>(std::nearbyint(x)); }

// Centre-crop or zero-pad at the end to `length` samples (audio_data.fit_length).
std::vector<float> fit_length(std::vector<float> samples, std::size_t length) {
    if (samples.size() > length) {
        const std::size_t start = (samples.size() - length) / 2;
        return std::vector<float>(samples.begin() + static_cast<std::ptrdiff_t>(start),
                                  samples.begin() + static_cast<std::ptrdiff_t>(start + length));
    }
    samples.resize(length, 0.0f);
    return samples;
}

// The modified Bessel function I0 (power series; converges for the Kaiser window's arguments <= beta).
double bessel_i0(double x) {
    double sum = 1.0, term = 1.0;
    const double q = x * x / 4.0;
    for (int k = 1; k < 500; ++k) {
        term *= q / (static_cast<double>(k) * k);
        sum += term;
        if (term < sum * 1e-17) break;
    }
    return sum;
}

double sinc(double x) { return x == 0.0 ? 1.0 : std::sin(kPi * x) / (kPi * x); }

// numpy.linspace(start, stop, num) as numpy computes it (step multiplied, the last value set to stop).
std::vector<double> linspace(double start, double stop, int num) {
    std::vector<double> out(static_cast<std::size_t>(num));
    const double step = (stop - start) / (num - 1);
    for (int i = 0; i < num; ++i) out[static_cast<std::size_t>(i)] = i * step + start;
    if (num > 1) out.back() = stop;
    return out;
}

double hz_to_mel(double f, const std::string& scale) {
    if (scale == "kaldi") return 1127.0 * std::log(1.0 + f / 700.0);
    if (f >= 1000.0) return 15.0 + std::log(f / 1000.0) * (27.0 / std::log(6.4));  // slaney
    return 3.0 * f / 200.0;
}

double mel_to_hz(double m) {  // slaney
    if (m >= 15.0) return 1000.0 * std::exp(std::log(6.4) / 27.0 * (m - 15.0));
    return 200.0 * m / 3.0;
}

// transformers.audio_utils._create_triangular_filter_bank: [bins][filters].
std::vector<std::vector<double>> triangles(const std::vector<double>& fft, const std::vector<double>& f) {
    const std::size_t n = f.size() - 2;
    std::vector<std::vector<double>> out(fft.size(), std::vector<double>(n));
    for (std::size_t k = 0; k < fft.size(); ++k)
        for (std::size_t i = 0; i < n; ++i) {
            const double down = -(f[i] - fft[k]) / (f[i + 1] - f[i]);
            const double up = (f[i + 2] - fft[k]) / (f[i + 2] - f[i + 1]);
            out[k][i] = std::max(0.0, std::min(down, up));
        }
    return out;
}

// |DFT|^2 of one frame (the first `frame.size()` samples of an `fft_length`-point transform), bins 0..n/2.
// With `complex64`, the real and imaginary parts are rounded to float first, as numpy's spectrogram stores them.
void power_spectrum(const std::vector<double>& frame, std::size_t fft_length, const std::vector<double>& cosines,
                    const std::vector<double>& sines, bool complex64, std::vector<double>& out) {
    const std::size_t bins = fft_length / 2 + 1;
    out.assign(bins, 0.0);
    for (std::size_t k = 0; k < bins; ++k) {
        double re = 0.0, im = 0.0;
        std::size_t idx = 0;
        for (std::size_t n = 0; n < frame.size(); ++n) {
            re += frame[n] * cosines[idx];
            im -= frame[n] * sines[idx];
            idx += k;
            if (idx >= fft_length) idx -= fft_length;
        }
        if (complex64) { re = static_cast<float>(re); im = static_cast<float>(im); }
        const double mag = std::hypot(re, im);
        out[k] = mag * mag;
    }
}

void twiddles(std::size_t n, std::vector<double>& cosines, std::vector<double>& sines) {
    cosines.resize(n);
    sines.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        cosines[i] = std::cos(2.0 * kPi * static_cast<double>(i) / static_cast<double>(n));
        sines[i] = std::sin(2.0 * kPi * static_cast<double>(i) / static_cast<double>(n));
    }
}

}  // namespace

double Audio::seconds() const { return rate > 0 ? static_cast<double>(samples.size()) / rate : 0.0; }

Audio Audio::decode_file(const std::string& path) {
    std::string d;
    try { d = read_file(path); } catch (const std::exception& e) { throw Error(path + ": unreadable (" + e.what() + ")"); }
    if (d.empty()) throw Error(path + ": empty audio file (0 bytes)");
    if (d.compare(0, 4, "fLaC") == 0 || d.compare(0, 4, "OggS") == 0)
        throw Error(path + ": FLAC/OGG is not decoded by libtrt_edge (WAV is): convert it, e.g. ffmpeg -i IN -c:a pcm_s16le OUT.wav");
    if (d.size() < 12 || d.compare(0, 4, "RIFF") != 0 || d.compare(8, 4, "WAVE") != 0)
        throw Error(path + ": not a WAV file (no RIFF/WAVE header)");
    uint16_t format = 0, channels = 0, bits = 0;
    uint32_t rate = 0;
    std::size_t pos = 12, data_at = 0, data_len = 0;
    bool have_fmt = false, have_data = false;
    while (pos + 8 <= d.size()) {
        const std::string name = d.substr(pos, 4);
        const std::size_t length = u32(d, pos + 4), start = pos + 8;
        if (name == "fmt ") {
            if (length < 16 || start + 16 > d.size()) throw Error(path + ": not a readable WAV file (short fmt chunk)");
            format = u16(d, start);
            channels = u16(d, start + 2);
            rate = u32(d, start + 4);
            bits = u16(d, start + 14);
            if (format == 0xFFFE && length >= 26 && start + 26 <= d.size()) format = u16(d, start + 24);  // extensible
            have_fmt = true;
        } else if (name == "data") {
            if (length != 0xFFFFFFFFu && start + length > d.size())
                throw Error(path + ": truncated WAV file (its data chunk declares " + std::to_string(length) +
                            " bytes, the file holds " + std::to_string(d.size() - start) + "); re-record or re-copy it");
            data_at = start;
            data_len = length == 0xFFFFFFFFu ? d.size() - start : length;
            have_data = true;
            break;
        }
        pos = start + length + (length & 1);
    }
    if (!have_fmt || !have_data) throw Error(path + ": not a readable WAV file (no fmt or data chunk)");
    const bool pcm = format == 1 && (bits == 8 || bits == 16 || bits == 24 || bits == 32);
    const bool flt = format == 3 && (bits == 32 || bits == 64);
    if (!pcm && !flt)
        throw Error(path + ": WAV format " + std::to_string(format) + " with " + std::to_string(bits) +
                    "-bit samples is not decoded (PCM 8/16/24/32-bit and float 32/64 are)");
    if (channels == 0) throw Error(path + ": not a readable WAV file (0 channels)");
    const std::size_t width = bits / 8, frame = width * channels, frames = data_len / frame;
    if (frames == 0) throw Error(path + ": empty audio file (no samples)");
    if (rate < static_cast<uint32_t>(kMinRate) || rate > static_cast<uint32_t>(kMaxRate))
        throw Error(path + ": sample rate " + std::to_string(rate) + " Hz is outside what trt-edge resamples from (" +
                    std::to_string(kMinRate) + ".." + std::to_string(kMaxRate) + " Hz)");
    Audio out;
    out.rate = static_cast<int>(rate);
    out.channels = channels;
    out.source = path;
    out.samples.assign(frames, 0.0f);
    const char* p = d.data() + data_at;
    for (std::size_t i = 0; i < frames; ++i) {
        float sum = 0.0f;
        for (std::size_t c = 0; c < channels; ++c, p += width) {
            float v;
            const auto* b = reinterpret_cast<const uint8_t*>(p);
            if (flt && bits == 32) { std::memcpy(&v, p, 4); }
            else if (flt) { double x; std::memcpy(&x, p, 8); v = static_cast<float>(x); }
            else if (bits == 8) v = static_cast<float>(static_cast<int>(b[0]) - 128) / 128.0f;
            else if (bits == 16) v = static_cast<float>(static_cast<int16_t>(b[0] | b[1] << 8)) / 32768.0f;
            else if (bits == 24) {
                const int32_t x = static_cast<int32_t>(static_cast<uint32_t>(b[0]) << 8 | static_cast<uint32_t>(b[1]) << 16 |
                                                       static_cast<uint32_t>(b[2]) << 24);
                v = static_cast<float>(x) / 2147483648.0f;
            } else {
                const int32_t x = static_cast<int32_t>(b[0] | b[1] << 8 | b[2] << 16 | static_cast<uint32_t>(b[3]) << 24);
                v = static_cast<float>(x) * (1.0f / 2147483648.0f);
            }
            if (!std::isfinite(v)) throw Error(path + ": holds samples that are not finite numbers (NaN or infinity)");
            if (channels == 1) { out.samples[i] = v; continue; }
            sum += v;
        }
        // numpy's float32 mean over the channels: summed in order, divided by the count.
        if (channels > 1) out.samples[i] = sum / static_cast<float>(channels);
    }
    return out;
}

std::vector<float> resample_poly(const std::vector<float>& x, int up, int down) {
    const int g = std::gcd(up, down);
    up /= g;
    down /= g;
    if (up == 1 && down == 1) return x;
    const int64_t n_in = static_cast<int64_t>(x.size());
    const int64_t n_out = (n_in * up) / down + ((n_in * up) % down != 0);
    const int max_rate = std::max(up, down);
    const int half_len = 10 * max_rate;
    const int taps = 2 * half_len + 1;
    const double cutoff = 1.0 / max_rate, beta = 5.0;
    // scipy.signal.firwin(taps, cutoff, window=("kaiser", 5.0)): windowed sinc scaled to unit DC gain, times up.
    std::vector<double> h(static_cast<std::size_t>(taps));
    const double alpha = 0.5 * (taps - 1), i0_beta = bessel_i0(beta);
    for (int n = 0; n < taps; ++n) {
        const double m = n - alpha, r = 2.0 * n / (taps - 1) - 1.0;
        h[static_cast<std::size_t>(n)] = cutoff * sinc(cutoff * m) * bessel_i0(beta * std::sqrt(std::max(0.0, 1.0 - r * r))) / i0_beta;
    }
    const double total = std::accumulate(h.begin(), h.end(), 0.0);
    for (double& v : h) v = v / total * up;
    const int64_t n_pre_pad = down - half_len % down;
    const int64_t n_pre_remove = (half_len + n_pre_pad) / down;
    // y[i] = sum_j hp[j] * xu[(i + n_pre_remove) * down - j], hp = h delayed by n_pre_pad, xu = x with up-1 zeros
    // between samples (scipy's upfirdn); the post padding only lengthens the output scipy then cuts.
    std::vector<float> y(static_cast<std::size_t>(n_out));
    for (int64_t i = 0; i < n_out; ++i) {
        const int64_t t = (i + n_pre_remove) * down - n_pre_pad;  // index into h of x[0] is t - m*up
        int64_t m_lo = t - (taps - 1) <= 0 ? 0 : (t - (taps - 1) + up - 1) / up;
        const int64_t m_hi = std::min<int64_t>(n_in - 1, t < 0 ? -1 : t / up);
        double acc = 0.0;
        for (int64_t m = m_lo; m <= m_hi; ++m) acc += h[static_cast<std::size_t>(t - m * up)] * static_cast<double>(x[static_cast<std::size_t>(m)]);
        y[static_cast<std::size_t>(i)] = static_cast<float>(acc);
    }
    return y;
}

AudioProcessor AudioProcessor::from_file(const std::string& path) {
    Json doc;
    try { doc = parse_json(read_file(path)); } catch (const std::exception& e) { throw Error(path + ": " + e.what()); }
    AudioProcessor p;
    const std::string type = doc["feature_extractor_type"].str();
    auto number = [&doc](const char* key, double fallback) {
        return doc[key].type == Json::Type::Number ? doc[key].number : fallback;
    };
    if (type == "Wav2Vec2FeatureExtractor") p.kind = Kind::Waveform;
    else if (type == "WhisperFeatureExtractor") p.kind = Kind::Whisper;
    else if (type == "ASTFeatureExtractor") p.kind = Kind::Kaldi;
    else
        throw Error(path + ": feature extractor " + (type.empty() ? std::string("(none named)") : type) +
                    " is not implemented in libtrt_edge (Wav2Vec2FeatureExtractor, WhisperFeatureExtractor and "
                    "ASTFeatureExtractor are)");
    p.sampling_rate = static_cast<int>(number("sampling_rate", 16000));
    if (p.sampling_rate < kMinRate || p.sampling_rate > kMaxRate)
        throw Error(path + ": sampling_rate " + std::to_string(p.sampling_rate) + " is outside " +
                    std::to_string(kMinRate) + ".." + std::to_string(kMaxRate) + " Hz");
    p.do_normalize = doc["do_normalize"].type == Json::Type::Bool ? doc["do_normalize"].boolean : p.kind != Kind::Whisper;
    if (p.kind == Kind::Waveform) {
        if (number("feature_size", 1) != 1) throw Error(path + ": a waveform extractor with feature_size != 1 is not implemented");
        // A waveform extractor states no length: the kit records clip_seconds (else task.data's default 1 s).
        p.clip_seconds = number("clip_seconds", 1.0);
        if (!(p.clip_seconds > 0)) throw Error(path + ": clip_seconds must be positive");
        p.clip_samples = static_cast<int>(round_half_even(p.clip_seconds * p.sampling_rate));
    } else if (p.kind == Kind::Whisper) {
        p.n_fft = static_cast<int>(number("n_fft", 400));
        p.hop_length = static_cast<int>(number("hop_length", 160));
        p.num_mel_bins = static_cast<int>(number("feature_size", 80));
        p.clip_samples = static_cast<int>(number("chunk_length", 30) * p.sampling_rate);
        if (number("dither", 0.0) != 0.0) throw Error(path + ": dither is random noise; libtrt_edge runs Whisper's extractor with dither 0");
        if (p.do_normalize) throw Error(path + ": do_normalize on a Whisper extractor is not implemented");
        if (p.n_fft < 2 || p.hop_length < 1 || p.num_mel_bins < 1 || p.clip_samples < p.n_fft)
            throw Error(path + ": n_fft, hop_length, feature_size and chunk_length must be positive (a chunk of at least n_fft samples)");
        p.clip_seconds = static_cast<double>(p.clip_samples) / p.sampling_rate;
        // mel_filter_bank(1 + n_fft // 2, feature_size, 0, 8000, rate, norm="slaney", mel_scale="slaney")
        const int bins = 1 + p.n_fft / 2;
        const std::vector<double> fft = linspace(0.0, static_cast<double>(p.sampling_rate / 2), bins);
        std::vector<double> f = linspace(hz_to_mel(0.0, "slaney"), hz_to_mel(8000.0, "slaney"), p.num_mel_bins + 2);
        for (double& v : f) v = mel_to_hz(v);
        auto bank = triangles(fft, f);
        for (auto& row : bank)
            for (int i = 0; i < p.num_mel_bins; ++i) row[static_cast<std::size_t>(i)] *= 2.0 / (f[static_cast<std::size_t>(i) + 2] - f[static_cast<std::size_t>(i)]);
        p.mel_filters = bank;
        p.input = "input_features";
    } else {
        p.num_mel_bins = static_cast<int>(number("num_mel_bins", 128));
        p.max_length = static_cast<int>(number("max_length", 1024));
        p.mean = number("mean", -4.2677393);
        p.std = number("std", 4.5689974);
        if (p.num_mel_bins < 1 || p.max_length < 1) throw Error(path + ": num_mel_bins and max_length must be positive");
        p.n_fft = 400;
        p.hop_length = 160;
        p.clip_seconds = (p.max_length - 1) * 0.010 + kFrameSeconds;
        // mel_filter_bank(257, num_mel_bins, 20, rate // 2, rate, None, "kaldi", triangularize_in_mel_space=True)
        const double width = static_cast<double>(p.sampling_rate) / 512.0;
        std::vector<double> fft(257);
        for (std::size_t k = 0; k < fft.size(); ++k) fft[k] = hz_to_mel(width * static_cast<double>(k), "kaldi");
        p.mel_filters = triangles(fft, linspace(hz_to_mel(20.0, "kaldi"), hz_to_mel(p.sampling_rate / 2, "kaldi"), p.num_mel_bins + 2));
    }
    return p;
}

double AudioProcessor::frame_seconds() const {
    return kind == Kind::Whisper ? static_cast<double>(n_fft) / sampling_rate : kFrameSeconds;
}

std::vector<float> AudioProcessor::prepare(const Audio& audio) const {
    const std::string who = audio.source.empty() ? std::string("the audio") : audio.source;
    if (audio.rate <= 0 || audio.samples.empty()) throw Error(who + ": no samples");
    if (audio.seconds() < frame_seconds()) {
        char ms[64];
        std::snprintf(ms, sizeof ms, "(%.1f ms) is shorter than one model frame (%.1f ms)", audio.seconds() * 1000, frame_seconds() * 1000);
        throw Error(who + ": " + std::to_string(audio.samples.size()) + " samples " + ms);
    }
    std::vector<float> x = audio.samples;
    if (audio.rate != sampling_rate) {
        const int g = std::gcd(audio.rate, sampling_rate);
        const int up = sampling_rate / g, down = audio.rate / g;
        if (std::max(up, down) > kMaxResampleFactor)
            throw Error(who + ": cannot resample " + std::to_string(audio.rate) + " Hz to the feature extractor's " +
                        std::to_string(sampling_rate) + " Hz (a " + std::to_string(up) + "/" + std::to_string(down) +
                        " polyphase filter); convert the file to a usual rate (8, 16, 22.05, 44.1, 48 kHz) first");
        x = fit_length(resample_poly(x, up, down),
                       static_cast<std::size_t>(round_half_even(audio.seconds() * sampling_rate)));
    }
    if (kind == Kind::Waveform) x = fit_length(std::move(x), static_cast<std::size_t>(clip_samples));
    return x;
}

Tensor AudioProcessor::preprocess(const Audio& audio) const {
    std::vector<float> x = prepare(audio);
    Tensor t;
    t.dtype = DType::Float32;
    if (kind == Kind::Waveform) {
        if (do_normalize) {
            double mean = 0.0, var = 0.0;
            for (float v : x) mean += v;
            mean /= static_cast<double>(x.size());
            for (float v : x) var += (v - mean) * (v - mean);
            var /= static_cast<double>(x.size());
            const double scale = std::sqrt(var + 1e-7);
            for (float& v : x) v = static_cast<float>((v - mean) / scale);
        }
        t.shape = {1, static_cast<int64_t>(x.size())};
        t.floats = std::move(x);
        return t;
    }
    std::vector<double> cosines, sines, frame, power;
    const std::size_t mels = static_cast<std::size_t>(num_mel_bins);
    if (kind == Kind::Whisper) {
        x.resize(static_cast<std::size_t>(clip_samples), 0.0f);  // pad with silence, or keep the first chunk
        const std::size_t n = static_cast<std::size_t>(n_fft), half = n / 2, hop = static_cast<std::size_t>(hop_length);
        // torch.stft(center=True): reflect-padded by n_fft / 2 on both sides; its last frame is dropped.
        std::vector<double> padded(x.size() + 2 * half);
        for (std::size_t i = 0; i < padded.size(); ++i) {
            const int64_t j = static_cast<int64_t>(i) - static_cast<int64_t>(half);
            const int64_t len = static_cast<int64_t>(x.size());
            const int64_t r = j < 0 ? -j : j >= len ? 2 * (len - 1) - j : j;
            padded[i] = x[static_cast<std::size_t>(r)];
        }
        const std::size_t frames = (padded.size() - n) / hop;  // torch's 1 + (padded - n) / hop, the last dropped
        twiddles(n, cosines, sines);
        std::vector<double> window(n);
        for (std::size_t i = 0; i < n; ++i) window[i] = 0.5 - 0.5 * std::cos(2.0 * kPi * static_cast<double>(i) / static_cast<double>(n));
        std::vector<double> logmel(mels * frames);
        double top = -1e300;
        frame.resize(n);
        for (std::size_t f = 0; f < frames; ++f) {
            for (std::size_t i = 0; i < n; ++i) frame[i] = padded[f * hop + i] * window[i];
            power_spectrum(frame, n, cosines, sines, false, power);
            for (std::size_t m = 0; m < mels; ++m) {
                double e = 0.0;
                for (std::size_t k = 0; k < power.size(); ++k) e += mel_filters[k][m] * power[k];
                const double v = std::log10(std::max(e, 1e-10));
                logmel[m * frames + f] = v;
                top = std::max(top, v);
            }
        }
        t.floats.resize(logmel.size());
        for (std::size_t i = 0; i < logmel.size(); ++i) t.floats[i] = static_cast<float>((std::max(logmel[i], top - 8.0) + 4.0) / 4.0);
        t.shape = {1, static_cast<int64_t>(mels), static_cast<int64_t>(frames)};
        return t;
    }
    // AST without torchaudio: transformers.audio_utils.spectrogram(center=False, fft_length=512, ...).
    const std::size_t n = 400, hop = 160, fft_length = 512, rows = static_cast<std::size_t>(max_length);
    const std::size_t frames = x.size() < n ? 0 : 1 + (x.size() - n) / hop;
    twiddles(fft_length, cosines, sines);
    std::vector<double> window(n);
    for (std::size_t i = 0; i < n; ++i) window[i] = 0.5 - 0.5 * std::cos(2.0 * kPi * static_cast<double>(i) / static_cast<double>(n - 1));
    t.floats.assign(rows * mels, 0.0f);
    const float mean_f = static_cast<float>(mean), scale_f = static_cast<float>(std * 2.0);
    frame.resize(n);
    for (std::size_t f = 0; f < std::min(frames, rows); ++f) {
        double dc = 0.0;
        for (std::size_t i = 0; i < n; ++i) dc += (frame[i] = x[f * hop + i]);
        dc /= static_cast<double>(n);
        for (double& v : frame) v -= dc;
        for (std::size_t i = n - 1; i >= 1; --i) frame[i] -= 0.97 * frame[i - 1];
        frame[0] *= 1.0 - 0.97;
        for (std::size_t i = 0; i < n; ++i) frame[i] *= window[i];
        power_spectrum(frame, fft_length, cosines, sines, true, power);
        for (std::size_t m = 0; m < mels; ++m) {
            double e = 0.0;
            for (std::size_t k = 0; k < power.size(); ++k) e += mel_filters[k][m] * power[k];
            t.floats[f * mels + m] = static_cast<float>(std::log(std::max(1.192092955078125e-07, e)));
        }
    }
    // Frames past the clip are zeros before normalising, as Python pads the fbank with zeros.
    if (do_normalize)
        for (float& v : t.floats) v = (v - mean_f) / scale_f;
    t.shape = {1, static_cast<int64_t>(rows), static_cast<int64_t>(mels)};
    return t;
}

}  // namespace trt_edge
