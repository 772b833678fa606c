//===- Error.h - runtime errors that say where they happened ---*- C++ -*-===//

#ifndef LAER_RUNTIME_ERROR_H
#define LAER_RUNTIME_ERROR_H

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace laer::rt {

/// Where in a distributed run an error was detected. -1 means "not known"
/// or "not applicable" and is left out of the message.
struct ErrorContext {
  int rank = -1;
  int layer = -1;
  long step = -1;
};

/// Every error the runtime raises: bad plans, bad shapes, failed or timed
/// out collectives. The message starts with the context, e.g.
/// "rank 2, layer 0, step 5: expert 3 receives 17 tokens but has no replica".
class RuntimeError : public std::runtime_error {
public:
  RuntimeError(const ErrorContext &context, const std::string &message)
      : std::runtime_error(format(context, message)), context_(context),
        message_(message) {}

  const ErrorContext &context() const { return context_; }
  /// The message without the context prefix.
  const std::string &message() const { return message_; }

  static std::string format(const ErrorContext &context,
                            const std::string &message) {
    std::ostringstream out;
    const char *separator = "";
    if (context.rank >= 0) {
      out << "rank " << context.rank;
      separator = ", ";
    }
    if (context.layer >= 0) {
      out << separator << "layer " << context.layer;
      separator = ", ";
    }
    if (context.step >= 0) {
      out << separator << "step " << context.step;
      separator = ", ";
    }
    if (*separator)
      out << ": ";
    out << message;
    return out.str();
  }

private:
  ErrorContext context_;
  std::string message_;
};

/// Builds a message from streamable parts and throws it as a RuntimeError.
template <typename... Parts>
[[noreturn]] void fail(const ErrorContext &context, Parts &&...parts) {
  std::ostringstream out;
  (out << ... << std::forward<Parts>(parts));
  throw RuntimeError(context, out.str());
}

/// `size * factor` for element counts; fails naming `what` when `factor`
/// is negative or the product does not fit.
inline std::size_t checkedMultiply(std::size_t size, std::int64_t factor,
                                   const ErrorContext &context,
                                   const std::string &what) {
  std::size_t product = 0;
  if (factor < 0 ||
      __builtin_mul_overflow(size, static_cast<std::size_t>(factor), &product))
    fail(context, what, ": size ", size, " x ", factor,
         " is negative or too large");
  return product;
}

/// `value` as an int after checking it lies in [low, high] (within int):
/// 4294967298 is refused rather than read as 2.
inline int checkedInt(std::int64_t value, std::int64_t low, std::int64_t high,
                      const ErrorContext &context, const std::string &what) {
  low = std::max<std::int64_t>(low, std::numeric_limits<int>::min());
  high = std::min<std::int64_t>(high, std::numeric_limits<int>::max());
  if (value < low || value > high)
    fail(context, what, " must be in [", low, ", ", high, "], got ", value);
  return static_cast<int>(value);
}

/// `a + b` for counts that must stay non-negative; fails naming `what`
/// when either is negative or the sum does not fit.
inline std::int64_t checkedAdd(std::int64_t a, std::int64_t b,
                               const ErrorContext &context,
                               const std::string &what) {
  std::int64_t sum = 0;
  if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &sum))
    fail(context, what, ": ", a, " + ", b, " is negative or too large");
  return sum;
}

} // namespace laer::rt

#endif // LAER_RUNTIME_ERROR_H
