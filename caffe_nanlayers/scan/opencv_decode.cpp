// cv::imdecode behind a C function, so a scan worker decodes an encoded Datum
// with the very OpenCV that Caffe links, without loading Caffe.
//
// Caffe's DecodeDatumToCVMatNative calls cv::imdecode(data, -1) and
// DecodeDatumToCVMat calls it with CV_LOAD_IMAGE_COLOR (1) or
// CV_LOAD_IMAGE_GRAYSCALE (0): the caller passes that flag through. The image
// comes back as OpenCV lays it out (rows, then columns, then channels: BGR for
// colour), which is the order DataTransformer::Transform(const cv::Mat&) reads.
//
// Built by scripts/install_caffe.py against the system's OpenCV, the one
// _caffe.so links. Loaded with ctypes by opencv_decode.py.

#include <cstddef>
#include <cstring>
#include <exception>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

namespace {

enum Outcome { DECODED = 0, TOO_SMALL = 1, NOT_DECODED = 2, FAILED = 3 };

void copy_message(const char* text, char* message, size_t message_size) {
  if (message_size == 0) return;
  std::strncpy(message, text, message_size - 1);
  message[message_size - 1] = '\0';
}

}  // namespace

extern "C" {

// Decode ``size`` bytes with cv::imdecode(bytes, flag). ``shape`` receives rows,
// cols, channels and OpenCV's depth (CV_8U = 0, CV_16U = 2, ...). The pixels
// are copied into ``out`` only when the image is 8-bit and fits in
// ``capacity`` bytes; otherwise TOO_SMALL says how much is needed (a depth
// other than CV_8U is returned as DECODED without pixels: Caffe refuses it).
// NOT_DECODED: imdecode returned an empty image (Caffe logs "Could not decode
// datum"); FAILED: OpenCV threw, its message is in ``message``.
int nanlayers_imdecode(const unsigned char* bytes, size_t size, int flag, unsigned char* out,
                       size_t capacity, int* shape, char* message, size_t message_size) {
  try {
    // Caffe hands imdecode a std::vector<char> of the Datum's data; a Mat over the
    // caller's bytes is the same input without the copy.
    cv::Mat input(1, static_cast<int>(size), CV_8UC1, const_cast<unsigned char*>(bytes));
    cv::Mat image = cv::imdecode(input, flag);
    if (!image.data) return NOT_DECODED;
    shape[0] = image.rows;
    shape[1] = image.cols;
    shape[2] = image.channels();
    shape[3] = image.depth();
    if (image.depth() != CV_8U) return DECODED;
    const size_t row_bytes = static_cast<size_t>(image.cols) * image.channels();
    if (row_bytes * image.rows > capacity) return TOO_SMALL;
    for (int row = 0; row < image.rows; ++row) {
      std::memcpy(out + row * row_bytes, image.ptr<unsigned char>(row), row_bytes);
    }
    return DECODED;
  } catch (const std::exception& error) {
    copy_message(error.what(), message, message_size);
    return FAILED;
  } catch (...) {
    copy_message("an exception that is not a std::exception", message, message_size);
    return FAILED;
  }
}

// The OpenCV version this library was compiled against, to name in messages.
const char* nanlayers_opencv_version() { return CV_VERSION; }

}  // extern "C"
