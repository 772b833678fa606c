//===- LaerPlusHook.h - the tests' relayout hook ---------------*- C++ -*-===//
//
// laer+ on the default cluster, re-planning every `replanEvery` steps, for
// experts of hidden size `hidden` and FFN size `ffn`. Header-only: the
// compiled-model test links no test library.
//
//===----------------------------------------------------------------------===//

#ifndef LAER_TEST_LAERPLUSHOOK_H
#define LAER_TEST_LAERPLUSHOOK_H

#include "laer/planner/Planner.h"
#include "laer/runtime/fsep/RelayoutHook.h"

#include <cstdint>
#include <memory>

namespace laer::test {

inline rt::ReplanningHook laerPlusHook(std::int64_t hidden, std::int64_t ffn,
                                       long replanEvery) {
  planner::LayerSpec layer;
  layer.hidden = hidden;
  layer.ffn = ffn;
  return rt::ReplanningHook(
      std::make_unique<planner::PlannerHook>(planner::makePlanner("laer+"),
                                             planner::ClusterSpec{}, layer),
      replanEvery);
}

} // namespace laer::test

#endif // LAER_TEST_LAERPLUSHOOK_H
