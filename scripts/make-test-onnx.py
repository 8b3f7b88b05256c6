#!/usr/bin/env python3
"""Writes the ONNX test model crates/epai-engine/tests/fixtures/churn_score.onnx.

A logistic score over three features, churn = sigmoid(x . W + b), with x = [recency_days,
orders, spend] as one float tensor of shape [batch, 3]. The protobuf is written by hand (the
few ONNX messages it needs), so the fixture can be rebuilt with nothing but Python; the tests
check its outputs against the same formula.

Usage: scripts/make-test-onnx.py [OUTPUT]
"""

import struct
import sys
from pathlib import Path

WEIGHTS = [0.05, -0.4, -0.01]
BIAS = 0.5
INPUTS = ["recency_days", "orders", "spend"]
FLOAT = 1  # TensorProto.DataType.FLOAT


def varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_varint(number, value):
    return varint(number << 3) + varint(value)


def field_bytes(number, payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def tensor(name, dims, values):
    """TensorProto: dims (1), data_type (2), float_data (4, packed), name (8)."""
    packed = b"".join(struct.pack("<f", v) for v in values)
    return (b"".join(field_varint(1, d) for d in dims) + field_varint(2, FLOAT)
            + field_bytes(4, packed) + field_bytes(8, name))


def value_info(name, dims):
    """ValueInfoProto with a float tensor type; a str dim is symbolic (dim_param)."""
    shape = b"".join(
        field_bytes(1, field_bytes(2, d) if isinstance(d, str) else field_varint(1, d))
        for d in dims)
    tensor_type = field_varint(1, FLOAT) + field_bytes(2, shape)
    return field_bytes(1, name) + field_bytes(2, field_bytes(1, tensor_type))


def node(op_type, inputs, outputs, name):
    return (b"".join(field_bytes(1, i) for i in inputs)
            + b"".join(field_bytes(2, o) for o in outputs)
            + field_bytes(3, name) + field_bytes(4, op_type))


def model():
    graph = (
        field_bytes(1, node("MatMul", ["features", "weights"], ["logit_raw"], "matmul"))
        + field_bytes(1, node("Add", ["logit_raw", "bias"], ["logit"], "add"))
        + field_bytes(1, node("Sigmoid", ["logit"], ["churn"], "sigmoid"))
        + field_bytes(2, "churn_score")
        + field_bytes(5, tensor("weights", [len(WEIGHTS), 1], WEIGHTS))
        + field_bytes(5, tensor("bias", [1], [BIAS]))
        + field_bytes(11, value_info("features", ["batch", len(INPUTS)]))
        + field_bytes(12, value_info("churn", ["batch", 1]))
    )
    opset = field_bytes(1, "") + field_varint(2, 13)
    return (field_varint(1, 8) + field_bytes(2, "epai-test") + field_bytes(7, graph)
            + field_bytes(8, opset))


def main():
    default = Path(__file__).resolve().parent.parent / \
        "crates/epai-engine/tests/fixtures/churn_score.onnx"
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    output.write_bytes(model())
    print(f"wrote {output} (inputs {','.join(INPUTS)})")


if __name__ == "__main__":
    main()
