# The runtime's unit tests (no MLIR): included by test/unit/CMakeLists.txt
# in the whole project, and by runtime/CMakeLists.txt when the runtime is
# built on its own (cmake -S runtime). Sources are named from this file's
# folder; LAER_FIXED_TEXT (the training text) and GoogleTest come from the
# includer.
set(LAER_UNIT_TESTS ${CMAKE_CURRENT_LIST_DIR})

# Runtime test helpers shared with the MPI integration tests: the float64
# reference layer and backend-independent scenarios.
add_library(laer-runtime-testlib STATIC
  ${LAER_UNIT_TESTS}/runtime/CommunicatorConformance.cpp
  ${LAER_UNIT_TESTS}/runtime/FsepScenarios.cpp
  ${LAER_UNIT_TESTS}/runtime/LanguageModelRuns.cpp
  ${LAER_UNIT_TESTS}/runtime/ReferenceMoE.cpp
  ${LAER_UNIT_TESTS}/runtime/ValidationScenarios.cpp
)
target_compile_options(laer-runtime-testlib PRIVATE -fexceptions)
target_include_directories(laer-runtime-testlib PUBLIC
  ${LAER_UNIT_TESTS}/runtime)
target_link_libraries(laer-runtime-testlib PUBLIC laer_planner laer_runtime)
# The tests' fixed training text (TrainingText.h).
target_compile_definitions(laer-runtime-testlib PUBLIC
  LAER_TEXT_DIR="${LAER_FIXED_TEXT}")

# Runtime unit tests: no MLIR, exceptions on; OpenBLAS single-threaded
# because the ranks are the parallelism.
add_executable(laer-runtime-unittests
  ${LAER_UNIT_TESTS}/DeviceInfoTest.cpp
  ${LAER_UNIT_TESTS}/runtime/DenseKernelsTest.cpp
  ${LAER_UNIT_TESTS}/runtime/InProcessFsepTest.cpp
  ${LAER_UNIT_TESTS}/runtime/LanguageModelTest.cpp
  ${LAER_UNIT_TESTS}/runtime/LayerPlanningTest.cpp
  ${LAER_UNIT_TESTS}/runtime/TraceTest.cpp
  ${LAER_UNIT_TESTS}/runtime/MoEBackendTest.cpp
  ${LAER_UNIT_TESTS}/runtime/PlanTest.cpp
  ${LAER_UNIT_TESTS}/runtime/RelayoutHookTest.cpp
  ${LAER_UNIT_TESTS}/runtime/RouterVariantsTest.cpp
  ${LAER_UNIT_TESTS}/runtime/SafetensorsFilesTest.cpp
  ${LAER_UNIT_TESTS}/runtime/TokenExchangeTest.cpp
)
target_compile_options(laer-runtime-unittests PRIVATE -fexceptions)
target_link_libraries(laer-runtime-unittests PRIVATE
  laer-runtime-testlib GTest::gtest_main)
gtest_discover_tests(laer-runtime-unittests DISCOVERY_TIMEOUT 60
  PROPERTIES TIMEOUT 300 ENVIRONMENT OPENBLAS_NUM_THREADS=1)

# The compiled ABI called directly with what no verifier produces; linked
# against liblaer_train as a training binary is (the test library would
# bring a second copy of the runtime).
add_executable(laer-abi-unittests
  ${LAER_UNIT_TESTS}/runtime/CompiledAbiTest.cpp)
target_compile_options(laer-abi-unittests PRIVATE -fexceptions)
# The compiler's FSEP limits (header-only), compared with the runtime's.
target_include_directories(laer-abi-unittests PRIVATE
  ${LAER_UNIT_TESTS}/runtime ${LAER_UNIT_TESTS}/../../include)
target_link_libraries(laer-abi-unittests PRIVATE laer_train GTest::gtest_main)
gtest_discover_tests(laer-abi-unittests DISCOVERY_TIMEOUT 60
  PROPERTIES TIMEOUT 300)

# Planner tests: validity on random and degenerate loads, quality against
# the paper's heuristic and against exhaustive search.
add_executable(laer-planner-unittests
  ${LAER_UNIT_TESTS}/planner/PlannerTest.cpp
  ${LAER_UNIT_TESTS}/planner/BoundsTest.cpp
  ${LAER_UNIT_TESTS}/planner/PlanBuildingTest.cpp
  ${LAER_UNIT_TESTS}/planner/TokenSplitTest.cpp
  ${LAER_UNIT_TESTS}/planner/WorkloadsTest.cpp)
target_compile_options(laer-planner-unittests PRIVATE -fexceptions)
# Header-only helpers of runtime/ (ErrorOf.h); the planners' shared pieces
# (PlanBuilding.h), tested directly.
target_include_directories(laer-planner-unittests PRIVATE
  ${LAER_UNIT_TESTS}/runtime
  ${LAER_UNIT_TESTS}/../../runtime/lib/planner)
target_link_libraries(laer-planner-unittests PRIVATE
  laer_planner GTest::gtest_main)
gtest_discover_tests(laer-planner-unittests DISCOVERY_TIMEOUT 60
  PROPERTIES TIMEOUT 600)

# The compiled binaries' runtime (liblaer_train) refuses a main() of
# another ABI version.
add_executable(laer-compiled-unittests
  ${LAER_UNIT_TESTS}/compiled/AbiVersionTest.cpp)
target_compile_options(laer-compiled-unittests PRIVATE -fexceptions)
target_link_libraries(laer-compiled-unittests PRIVATE laer_train
  GTest::gtest_main)
gtest_discover_tests(laer-compiled-unittests DISCOVERY_TIMEOUT 60)

# Simulator tests (laer-sim's library), with a model config of our own.
add_executable(laer-sim-unittests ${LAER_UNIT_TESTS}/sim/SimulatorTest.cpp)
target_compile_options(laer-sim-unittests PRIVATE -fexceptions)
target_compile_definitions(laer-sim-unittests PRIVATE
  LAER_SIM_FIXTURES="${LAER_UNIT_TESTS}/sim"
  # The paper's figures live beside the checkout, in the workspace's
  # shared/ folder; the test skips when they are not there.
  LAER_SHARED_DATA="${LAER_UNIT_TESTS}/../../../shared/data/laer-ae")
target_include_directories(laer-sim-unittests PRIVATE
  ${LAER_UNIT_TESTS}/runtime)
target_link_libraries(laer-sim-unittests PRIVATE laer_sim GTest::gtest_main)
gtest_discover_tests(laer-sim-unittests DISCOVERY_TIMEOUT 60
  PROPERTIES TIMEOUT 300)

# GPU backend tests: built whenever the CUDA backend is, skipped (with the
# reason) on machines without a GPU; on a GPU machine they compare every
# kernel with the CPU one.
if(LAER_RUNTIME_HAS_CUDA)
  add_executable(laer-cuda-unittests
    ${LAER_UNIT_TESTS}/cuda/CudaKernelsTest.cpp
    ${LAER_UNIT_TESTS}/cuda/GpuFsepMoELayerTest.cpp
    ${LAER_UNIT_TESTS}/cuda/GpuMoEBackendTest.cpp
    ${LAER_UNIT_TESTS}/cuda/GroupedGemmTest.cpp
    ${LAER_UNIT_TESTS}/cuda/NcclCommunicatorTest.cpp
  )
  target_compile_options(laer-cuda-unittests PRIVATE -fexceptions)
  target_link_libraries(laer-cuda-unittests PRIVATE laer-runtime-testlib
    GTest::gtest_main)
  gtest_discover_tests(laer-cuda-unittests DISCOVERY_TIMEOUT 60
    PROPERTIES TIMEOUT 300)
endif()
