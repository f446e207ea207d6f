//! Small ONNX graphs written message by message: the tests' hand-made cases and the fuzz target's seeds.
//! Each function builds one piece; [`model`] puts a graph together with the default opset 17.

use prost::Message;

use crate::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto, attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
};

/// A float tensor value named `name` of shape `dims` (`None`: a symbolic axis).
pub fn value_info(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: Some(match d {
                Some(v) => tensor_shape_proto::dimension::Value::DimValue(*v),
                None => tensor_shape_proto::dimension::Value::DimParam("N".into()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A float initializer (raw little-endian data).
pub fn tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

/// A 1-D `int64` initializer (a shape).
pub fn ints_tensor(name: &str, values: &[i64]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: vec![values.len() as i64],
        data_type: Some(DataType::Int64 as i32),
        int64_data: values.to_vec(),
        ..Default::default()
    }
}

/// A node `op(inputs) -> output`, named `{op}_{output}`.
pub fn node(op: &str, inputs: &[&str], output: &str, attributes: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        name: Some(format!("{op}_{output}")),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute: attributes,
        ..Default::default()
    }
}

/// An integer attribute.
pub fn int_attr(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        i: Some(v),
        r#type: Some(AttributeType::Int as i32),
        ..Default::default()
    }
}

/// An integer-list attribute.
pub fn ints_attr(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        ints: v.to_vec(),
        r#type: Some(AttributeType::Ints as i32),
        ..Default::default()
    }
}

/// The encoded model: input `x` of shape `input`, the nodes and initializers, output `output` (`[N, 2]`
/// declared; the importer reads the shape from the layers).
pub fn model(input: &[Option<i64>], nodes: Vec<NodeProto>, initializers: Vec<TensorProto>, output: &str) -> Vec<u8> {
    ModelProto {
        ir_version: Some(8),
        producer_name: Some("more-onnx sample".into()),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
        graph: Some(GraphProto {
            node: nodes,
            initializer: initializers,
            input: vec![value_info("x", input)],
            output: vec![value_info(output, &[None, Some(2)])],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// `Gemm(3 → 2, transB) → Relu → Gemm(2 → 2) → Softmax` on a `[N, 3]` input.
pub fn mlp() -> Vec<u8> {
    let nodes = vec![
        node("Gemm", &["x", "W1", "B1"], "a", vec![int_attr("transB", 1)]),
        node("Relu", &["a"], "b", vec![]),
        node("Gemm", &["b", "W2", "B2"], "c", vec![]),
        node("Softmax", &["c"], "y", vec![int_attr("axis", -1)]),
    ];
    let init = vec![
        tensor("W1", &[2, 3], &[0.5, -1.0, 0.25, 1.0, 0.5, -0.5]),
        tensor("B1", &[2], &[0.1, -0.1]),
        tensor("W2", &[2, 2], &[1.0, -1.0, 0.5, 2.0]),
        tensor("B2", &[2], &[0.0, 0.3]),
    ];
    model(&[None, Some(3)], nodes, init, "y")
}

/// `Conv(1 → 2, 3x3, pad 1) → BatchNormalization → Relu → MaxPool 2 → Flatten → Gemm(18 → 2)` on a
/// `[N, 1, 6, 6]` input.
pub fn cnn() -> Vec<u8> {
    let nodes = vec![
        node(
            "Conv",
            &["x", "K", "KB"],
            "a",
            vec![ints_attr("pads", &[1, 1, 1, 1]), ints_attr("kernel_shape", &[3, 3])],
        ),
        node("BatchNormalization", &["a", "g", "b", "m", "v"], "c", vec![]),
        node("Relu", &["c"], "d", vec![]),
        node("MaxPool", &["d"], "e", vec![ints_attr("kernel_shape", &[2, 2]), ints_attr("strides", &[2, 2])]),
        node("Flatten", &["e"], "f", vec![int_attr("axis", 1)]),
        node("Gemm", &["f", "W", "B"], "y", vec![int_attr("transB", 1)]),
    ];
    let kernel: Vec<f32> = (0..18).map(|i| (i as f32 - 9.0) / 10.0).collect();
    let dense: Vec<f32> = (0..36).map(|i| ((i * 7) % 11) as f32 / 11.0 - 0.5).collect();
    let init = vec![
        tensor("K", &[2, 1, 3, 3], &kernel),
        tensor("KB", &[2], &[0.1, -0.2]),
        tensor("g", &[2], &[1.5, 0.5]),
        tensor("b", &[2], &[0.0, 0.1]),
        tensor("m", &[2], &[0.2, -0.1]),
        tensor("v", &[2], &[4.0, 0.25]),
        tensor("W", &[2, 18], &dense),
        tensor("B", &[2], &[0.0, 0.0]),
    ];
    model(&[None, Some(1), Some(6), Some(6)], nodes, init, "y")
}
