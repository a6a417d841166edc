"""Builds affine.onnx, the plumbing-test model of package ort:
y = x * 2 + 1 and s = ReduceSum(x) for x float32 [1, 4]. Opset 17.
Run: /usr/bin/python3 make_affine.py (the output is committed)."""
import onnx
from onnx import TensorProto, helper

x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
s = helper.make_tensor_value_info("s", TensorProto.FLOAT, [1, 1])
two = helper.make_tensor("two", TensorProto.FLOAT, [1], [2.0])
one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
nodes = [
    helper.make_node("Mul", ["x", "two"], ["x2"]),
    helper.make_node("Add", ["x2", "one"], ["y"]),
    helper.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=1),
]
g = helper.make_graph(nodes, "affine", [x], [y, s], initializer=[two, one, axes])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="cspine-test")
m.ir_version = 8
onnx.checker.check_model(m)
onnx.save(m, "affine.onnx")
