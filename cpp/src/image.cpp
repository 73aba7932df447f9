// Images: PNG/JPEG decoding with Debian's libpng (its simplified API) and libjpeg(-turbo), and the image
// processor of preprocessor_config.json (ViT-style: resize to size.height x size.width, rescale, normalise,
// channels first). The resize reimplements Pillow's separable resampling (Image.resize: a horizontal pass then
// a vertical pass, each a kernel stretched by the downscale factor, 22-bit fixed-point weights, 8-bit
// intermediate), since the Python image processors resize through Pillow or with the same antialiased kernel;
// the difference to Python is measured by tests/cpp (docs/cpp.md).
#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstddef>
#include <cstdio>
#include <cstring>

#include <jpeglib.h>  // after <cstdio>: it uses size_t and FILE without including their headers
#include <png.h>
#include <string>
#include <vector>

#include "manifest.hpp"
#include "trt_edge/trt_edge.hpp"

namespace trt_edge {

namespace {

Image decode_png(const std::string& data, const std::string& path) {
    png_image image;
    std::memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&image, data.data(), data.size()))
        throw Error(path + ": not a readable PNG (" + image.message + ")");
    const bool grey = (image.format & PNG_FORMAT_FLAG_COLOR) == 0;
    image.format = grey ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;  // alpha dropped, 16-bit scaled to 8 by libpng
    Image out;
    out.width = static_cast<int>(image.width);
    out.height = static_cast<int>(image.height);
    out.channels = grey ? 1 : 3;
    out.pixels.resize(PNG_IMAGE_SIZE(image));
    if (!png_image_finish_read(&image, nullptr, out.pixels.data(), 0, nullptr)) {
        const std::string message = image.message;
        png_image_free(&image);
        throw Error(path + ": PNG decoding failed (" + message + ")");
    }
    return out;
}

struct JpegError {
    jpeg_error_mgr mgr;
    std::jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
};

void jpeg_fail(j_common_ptr info) {
    auto* err = reinterpret_cast<JpegError*>(info->err);
    (*info->err->format_message)(info, err->message);
    std::longjmp(err->jump, 1);
}

Image decode_jpeg(const std::string& data, const std::string& path) {
    jpeg_decompress_struct info;
    JpegError err;
    info.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = jpeg_fail;
    Image out;
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&info);
        throw Error(path + ": JPEG decoding failed (" + err.message + ")");
    }
    jpeg_create_decompress(&info);
    jpeg_mem_src(&info, reinterpret_cast<const unsigned char*>(data.data()), static_cast<unsigned long>(data.size()));
    jpeg_read_header(&info, TRUE);
    const bool grey = info.jpeg_color_space == JCS_GRAYSCALE;
    info.out_color_space = grey ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&info);
    out.width = static_cast<int>(info.output_width);
    out.height = static_cast<int>(info.output_height);
    out.channels = static_cast<int>(info.output_components);
    out.pixels.resize(static_cast<std::size_t>(out.width) * out.height * out.channels);
    while (info.output_scanline < info.output_height) {
        unsigned char* row = out.pixels.data() + static_cast<std::size_t>(info.output_scanline) * out.width * out.channels;
        jpeg_read_scanlines(&info, &row, 1);
    }
    jpeg_finish_decompress(&info);
    jpeg_destroy_decompress(&info);
    return out;
}

// Pillow's filters (src/libImaging/Resample.c's definitions, written from their mathematical form).
double bilinear(double x) { x = std::fabs(x); return x < 1.0 ? 1.0 - x : 0.0; }
double bicubic(double x) {
    const double a = -0.5;
    x = std::fabs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
}
double nearest_box(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; }

constexpr int kPrecisionBits = 32 - 8 - 2;

struct Coefficients {
    std::vector<int> first, count;
    std::vector<int32_t> weights;  // count.max() per output, fixed point
    int stride = 0;
};

Coefficients coefficients(int in_size, int out_size, int resample) {
    double (*filter)(double) = resample == 3 ? bicubic : resample == 2 ? bilinear : nearest_box;
    const double support_1 = resample == 3 ? 2.0 : resample == 2 ? 1.0 : 0.5;
    const double scale = static_cast<double>(in_size) / out_size;
    const double filterscale = std::max(scale, 1.0);
    const double support = support_1 * filterscale;
    Coefficients c;
    c.stride = static_cast<int>(std::ceil(support)) * 2 + 1;
    c.first.resize(out_size);
    c.count.resize(out_size);
    c.weights.assign(static_cast<std::size_t>(out_size) * c.stride, 0);
    std::vector<double> k(c.stride);
    for (int xx = 0; xx < out_size; ++xx) {
        const double center = (xx + 0.5) * scale;
        const double ss = 1.0 / filterscale;
        int xmin = static_cast<int>(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = static_cast<int>(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double ww = 0.0;
        for (int x = 0; x < xmax; ++x) {
            k[x] = filter((x + xmin - center + 0.5) * ss);
            ww += k[x];
        }
        for (int x = 0; x < xmax; ++x) {
            const double w = ww != 0.0 ? k[x] / ww : k[x];
            c.weights[static_cast<std::size_t>(xx) * c.stride + x] =
                static_cast<int32_t>(w < 0 ? w * (1 << kPrecisionBits) - 0.5 : w * (1 << kPrecisionBits) + 0.5);
        }
        c.first[xx] = xmin;
        c.count[xx] = xmax;
    }
    return c;
}

uint8_t clip8(int64_t v) {
    v >>= kPrecisionBits;
    return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

Image resize_like_pillow(const Image& in, int width, int height, int filter) {
    Image mid = in;
    if (width != in.width) {
        const Coefficients c = coefficients(in.width, width, filter);
        mid.width = width;
        mid.pixels.assign(static_cast<std::size_t>(width) * in.height * in.channels, 0);
        for (int y = 0; y < in.height; ++y)
            for (int x = 0; x < width; ++x)
                for (int ch = 0; ch < in.channels; ++ch) {
                    int64_t acc = int64_t{1} << (kPrecisionBits - 1);
                    for (int i = 0; i < c.count[x]; ++i)
                        acc += static_cast<int64_t>(in.pixels[(static_cast<std::size_t>(y) * in.width + c.first[x] + i) * in.channels + ch]) *
                               c.weights[static_cast<std::size_t>(x) * c.stride + i];
                    mid.pixels[(static_cast<std::size_t>(y) * width + x) * in.channels + ch] = clip8(acc);
                }
    }
    if (height == mid.height) return mid;
    const Coefficients c = coefficients(mid.height, height, filter);
    Image out = mid;
    out.height = height;
    out.pixels.assign(static_cast<std::size_t>(mid.width) * height * mid.channels, 0);
    for (int y = 0; y < height; ++y)
        for (int x = 0; x < mid.width; ++x)
            for (int ch = 0; ch < mid.channels; ++ch) {
                int64_t acc = int64_t{1} << (kPrecisionBits - 1);
                for (int i = 0; i < c.count[y]; ++i)
                    acc += static_cast<int64_t>(mid.pixels[(static_cast<std::size_t>(c.first[y] + i) * mid.width + x) * mid.channels + ch]) *
                           c.weights[static_cast<std::size_t>(y) * c.stride + i];
                out.pixels[(static_cast<std::size_t>(y) * mid.width + x) * mid.channels + ch] = clip8(acc);
            }
    return out;
}

std::vector<double> numbers(const Json& value, const std::string& path, const char* key) {
    std::vector<double> out;
    if (value.type == Json::Type::Number) return {value.number};
    for (const Json& v : value.array) {
        if (v.type != Json::Type::Number) throw Error(path + ": " + key + " must be numbers");
        out.push_back(v.number);
    }
    return out;
}

}  // namespace

Image Image::decode_file(const std::string& path) {
    std::string data;
    try { data = read_file(path); } catch (const std::exception& e) { throw Error(path + ": unreadable (" + e.what() + ")"); }
    if (data.size() >= 8 && std::memcmp(data.data(), "\x89PNG\r\n\x1a\n", 8) == 0) return decode_png(data, path);
    if (data.size() >= 3 && std::memcmp(data.data(), "\xff\xd8\xff", 3) == 0) return decode_jpeg(data, path);
    throw Error(path + ": not a PNG or JPEG file");
}

ImageProcessor ImageProcessor::from_file(const std::string& path) {
    Json doc;
    try { doc = parse_json(read_file(path)); } catch (const std::exception& e) { throw Error(path + ": " + e.what()); }
    ImageProcessor p;
    auto flag = [&doc](const char* key, bool fallback) {
        return doc[key].type == Json::Type::Bool ? doc[key].boolean : fallback;
    };
    p.do_resize = flag("do_resize", true);
    p.do_rescale = flag("do_rescale", true);
    p.do_normalize = flag("do_normalize", true);
    p.convert_rgb = flag("do_convert_rgb", true);
    if (flag("do_center_crop", false))
        throw Error(path + ": do_center_crop is not implemented in libtrt_edge (the ViT-style resize is)");
    const Json& size = doc["size"];
    if (size["height"].type == Json::Type::Number && size["width"].type == Json::Type::Number) {
        p.height = static_cast<int>(size["height"].number);
        p.width = static_cast<int>(size["width"].number);
    } else if (size.type == Json::Type::Number) {
        p.height = p.width = static_cast<int>(size.number);
    } else if (!size.is_null()) {
        throw Error(path + ": size must give height and width (shortest_edge resizing is not implemented)");
    }
    if (p.height <= 0 || p.width <= 0) throw Error(path + ": size must be positive");
    if (doc["resample"].type == Json::Type::Number) p.resample = static_cast<int>(doc["resample"].number);
    if (p.resample != 0 && p.resample != 2 && p.resample != 3)
        throw Error(path + ": resample " + std::to_string(p.resample) + " is not implemented (0 nearest, 2 bilinear, 3 bicubic)");
    if (doc["rescale_factor"].type == Json::Type::Number) p.rescale_factor = doc["rescale_factor"].number;
    if (!doc["image_mean"].is_null()) p.mean = numbers(doc["image_mean"], path, "image_mean");
    if (!doc["image_std"].is_null()) p.std = numbers(doc["image_std"], path, "image_std");
    if (p.mean.size() != p.std.size() || p.mean.empty())
        throw Error(path + ": image_mean and image_std must have one value per channel");
    return p;
}

Tensor ImageProcessor::preprocess(const Image& image) const {
    if (image.width <= 0 || image.height <= 0 || image.pixels.size() != static_cast<std::size_t>(image.width) * image.height * image.channels)
        throw Error("the image has no pixels or fewer than its size says");
    const int channels = static_cast<int>(mean.size());
    // The Python runtime gives the processor as many channels as it normalises: grey is repeated to RGB,
    // RGBA loses its alpha, RGB is averaged to grey for a one-channel model (trt_edge.tasks.image_classification).
    Image src = image;
    if (src.channels != channels) {
        Image conv;
        conv.width = src.width;
        conv.height = src.height;
        conv.channels = channels;
        conv.pixels.resize(static_cast<std::size_t>(src.width) * src.height * channels);
        for (std::size_t i = 0; i < static_cast<std::size_t>(src.width) * src.height; ++i) {
            const uint8_t* px = &src.pixels[i * src.channels];
            for (int ch = 0; ch < channels; ++ch) {
                if (src.channels == 1) conv.pixels[i * channels + ch] = px[0];
                else if (channels == 1) conv.pixels[i] = static_cast<uint8_t>((299 * px[0] + 587 * px[1] + 114 * px[2] + 500) / 1000);
                else conv.pixels[i * channels + ch] = px[ch];
            }
        }
        src = std::move(conv);
    }
    const Image sized = do_resize ? resize_like_pillow(src, width, height, resample) : src;
    Tensor t;
    t.dtype = DType::Float32;
    t.shape = {1, channels, sized.height, sized.width};
    t.floats.resize(static_cast<std::size_t>(channels) * sized.height * sized.width);
    for (int ch = 0; ch < channels; ++ch)
        for (int y = 0; y < sized.height; ++y)
            for (int x = 0; x < sized.width; ++x) {
                double v = sized.pixels[(static_cast<std::size_t>(y) * sized.width + x) * channels + ch];
                if (do_rescale) v *= rescale_factor;
                if (do_normalize) v = (v - mean[ch]) / std[ch];
                t.floats[(static_cast<std::size_t>(ch) * sized.height + y) * sized.width + x] = static_cast<float>(v);
            }
    return t;
}

}  // namespace trt_edge
