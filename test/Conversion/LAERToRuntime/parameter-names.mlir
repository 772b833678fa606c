// RUN: laer-opt %laer_src_root/examples/tiny_moe_lm.mlir --laer-autodiff --convert-laer-to-runtime --cse | FileCheck %s
// RUN: laer-opt %laer_src_root/examples/tiny_moe_lm.mlir --laer-autodiff --convert-moe-to-fsep="num-devices=2" --convert-laer-to-runtime --cse | FileCheck %s --check-prefix=FSEP

// Named parameters (#moe.parameter) reach the runtime in
// laer_model_declare: each name is a constant byte array handed to
// laerrt_name_dense (index, transposed) or laerrt_name_moe (layer, part:
// 0 gate, 1 w1, 2 w3, 3 w2; transposed), fused or as an FSEP program (the
// expert names come from the bank).

// "lm_head.weight", dense parameter 14, transposed.
// CHECK-DAG: memref.global "private" constant @[[HEAD:laer_string_[0-9]+]] : memref<14xi8> = dense<[108, 109, 95, 104, 101, 97, 100, 46, 119, 101, 105, 103, 104, 116]>
// CHECK-LABEL: func.func @laer_model_declare
// CHECK: %[[H:.*]] = memref.get_global @[[HEAD]] : memref<14xi8>
// CHECK-NEXT: %[[HC:.*]] = memref.cast %[[H]] : memref<14xi8> to memref<?xi8>
// CHECK-NEXT: call @laerrt_name_dense(%arg0, %c14_i64, %c1_i64, %[[HC]])
// Layer 0: gate, w1, w3, w2.
// CHECK: call @laerrt_declare_moe(%arg0, %c0_i64,
// CHECK: call @laerrt_name_moe(%arg0, %c0_i64, %c0_i64, %c1_i64, %{{.*}}) : (!llvm.ptr, i64, i64, i64, memref<?xi8>) -> ()
// CHECK: call @laerrt_name_moe(%arg0, %c0_i64, %c1_i64, %c1_i64,
// CHECK: call @laerrt_name_moe(%arg0, %c0_i64, %c2_i64, %c1_i64,
// CHECK: call @laerrt_name_moe(%arg0, %c0_i64, %c3_i64, %c1_i64,
// CHECK-LABEL: func.func @laer_train_step

// FSEP-LABEL: func.func @laer_model_declare
// FSEP: call @laerrt_declare_moe(%arg0, %c0_i64,
// FSEP: call @laerrt_name_moe(%arg0, %c0_i64, %c0_i64, %c1_i64,
// FSEP: memref.get_global @{{.*}} : memref<51xi8>
// FSEP: call @laerrt_name_moe(%arg0, %c0_i64, %c1_i64, %c1_i64,
// FSEP: call @laerrt_name_moe(%arg0, %c0_i64, %c2_i64, %c1_i64,
// FSEP: call @laerrt_name_moe(%arg0, %c0_i64, %c3_i64, %c1_i64,
// FSEP-LABEL: func.func @laer_train_step
