# -*- Python -*-
# lit configuration for the laer compiler tests.

import os

import lit.formats
from lit.llvm import llvm_config

config.name = "LAER"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.laer_obj_root, "test")

# Unit tests and their inputs live beside the lit tests but are run by ctest.
config.excludes = ["CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py", "unit", "python", "integration"]

config.substitutions.append(("%laer_src_root", config.laer_src_root))
# lit runs under the Python that has Debian's packages; scripts use it too.
import sys
config.substitutions.append(("%python", sys.executable))

llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)

tool_dirs = [config.laer_tools_dir, config.llvm_tools_dir]
tools = ["laer-opt", "laer-sim", "laer-compile", "laer-train", "laer-import",
         "laer-run"]
llvm_config.add_tool_substitutions(tools, tool_dirs)
