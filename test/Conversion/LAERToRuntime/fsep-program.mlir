// RUN: laer-opt %laer_src_root/examples/tiny_moe_lm.mlir --laer-autodiff --convert-moe-to-fsep="num-devices=4 chunks=2 step-plans=true" --fsep-schedule --convert-laer-to-runtime --cse | FileCheck %s
// RUN: laer-opt %laer_src_root/examples/tiny_moe_lm.mlir --laer-autodiff --convert-moe-to-fsep="num-devices=2 slots-per-device=4" --convert-laer-to-runtime --cse | FileCheck %s --check-prefix=SYNC

// The scheduled FSEP program of the tiny model: each fsep op is one call
// on the runtime's layer, in the order fsep-schedule chose. The layers are
// declared with the N and C they were scheduled for.
// CHECK-LABEL: func.func @laer_model_declare
// CHECK: call @laerrt_declare_moe(%arg0, %{{.*}}, %c8_i64, %c64_i64, %c128_i64, %c2_i64, %{{.*}}, %{{.*}}, %{{.*}}, %c4_i64, %c3_i64)

// Forward of layer 0: the restore is in flight while chunk 0 is
// dispatched, chunk 1 is dispatched before chunk 0 computes, the combines
// complete after both chunks computed.
// CHECK-LABEL: func.func @laer_train_step
// CHECK: call @laerrt_fsep_route(%arg0, %[[A:c0_i64[_0-9]*]], %{{.*}}) : (!llvm.ptr, i64, memref<?x?xf32>) -> ()
// CHECK-NEXT: call @laerrt_fsep_relayout(%arg0, %[[A]])
// CHECK-NEXT: call @laerrt_fsep_restore(%arg0, %[[A]])
// CHECK-NEXT: call @laerrt_fsep_dispatch(%arg0, %[[A]], %{{.*}}, %[[K:c2_i64[_0-9]*]])
// CHECK-NEXT: call @laerrt_fsep_restore_wait(%arg0, %[[A]])
// CHECK-NEXT: call @laerrt_fsep_dispatch(%arg0, %[[A]], %{{.*}}, %[[K]])
// CHECK-NEXT: call @laerrt_fsep_dispatch_wait
// CHECK-NEXT: call @laerrt_fsep_expert_compute
// CHECK-NEXT: call @laerrt_fsep_combine
// CHECK-NEXT: call @laerrt_fsep_dispatch_wait
// CHECK-NEXT: call @laerrt_fsep_expert_compute
// CHECK-NEXT: call @laerrt_fsep_combine
// CHECK: call @laerrt_fsep_combine_wait(%arg0, %[[A]], %{{.*}}, %{{.*}}) : (!llvm.ptr, i64, i64, memref<?x?xf32>) -> ()
// CHECK: call @laerrt_fsep_combine_wait
// Backward of layer 1 first; its gradient all-to-all is waited for only
// at the end, after layer 0's backward.
// CHECK: call @laerrt_fsep_combine_backward(%arg0, %[[B:c1_i64[_0-9]*]], %{{.*}}, %{{.*}}) : (!llvm.ptr, i64, i64, memref<?x?xf32>) -> ()
// CHECK-NEXT: call @laerrt_fsep_combine_backward_wait
// CHECK-NEXT: call @laerrt_fsep_expert_compute_backward
// CHECK-NEXT: call @laerrt_fsep_dispatch_backward
// CHECK: call @laerrt_fsep_dispatch_backward_wait
// CHECK: call @laerrt_fsep_grad_reduce(%arg0, %[[B]])
// CHECK: call @laerrt_fsep_router_backward(%arg0, %[[B]], %{{.*}})
// CHECK: call @laerrt_fsep_combine_backward(%arg0, %[[A]]
// CHECK: call @laerrt_fsep_grad_reduce(%arg0, %[[A]])
// CHECK: call @laerrt_fsep_router_backward(%arg0, %[[A]], %{{.*}})
// CHECK: call @laerrt_fsep_grad_reduce_wait(%arg0, %[[B]])
// CHECK: call @laerrt_fsep_grad_reduce_wait(%arg0, %[[A]])
// The update: dense parameters, then each layer's shards and gate.
// CHECK: call @laerrt_adamw
// CHECK: call @laerrt_moe_update(%arg0, %[[A]])
// CHECK: call @laerrt_moe_update(%arg0, %[[B]])
// The fused layer calls and the fsep values are gone.
// CHECK-NOT: laerrt_moe_forward
// CHECK-NOT: fsep.

// Unscheduled (synchronous) transfers finish where they start.
// SYNC: call @laerrt_declare_moe({{.*}}, %c2_i64, %c4_i64)
// SYNC: call @laerrt_fsep_restore(
// SYNC-NEXT: call @laerrt_fsep_restore_wait(
// SYNC-NEXT: call @laerrt_fsep_dispatch(
// SYNC-NEXT: call @laerrt_fsep_dispatch_wait(
// SYNC-NEXT: call @laerrt_fsep_expert_compute(
// SYNC-NEXT: call @laerrt_fsep_combine(
// SYNC-NOT: call
// SYNC: call @laerrt_fsep_combine_wait(
