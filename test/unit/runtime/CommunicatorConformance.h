//===- CommunicatorConformance.h - one suite for every backend --*- C++ -*-===//
//
// Collective semantics every Communicator backend must satisfy. Runs on one
// rank and returns the failures it saw (empty when the backend conforms),
// so callers on threads or under mpirun assert on the result.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_TEST_COMMUNICATORCONFORMANCE_H
#define LAER_TEST_COMMUNICATORCONFORMANCE_H

#include "laer/runtime/comm/Communicator.h"

#include <string>
#include <vector>

namespace laer::test {

std::vector<std::string> checkCommunicator(rt::Communicator &comm);

} // namespace laer::test

#endif // LAER_TEST_COMMUNICATORCONFORMANCE_H
