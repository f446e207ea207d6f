//! From an ONNX graph to the chain of operators a sequential network is: the graph input, the output
//! taken, the nodes on the path between them in graph order, and the constants they read.

use std::collections::{HashMap, HashSet};

use crate::error::{ImportError, Result};
use crate::proto::{GraphProto, ModelProto, NodeProto, tensor_proto::DataType, type_proto};
use crate::tensor::{self, Constant};

/// The pieces of a graph an import reads.
#[derive(Debug)]
pub struct Chain<'a> {
    /// Name of the graph input the network reads.
    pub input: String,
    /// Its per-sample shape (the batch axis removed).
    pub input_shape: Vec<usize>,
    /// Name of the graph output taken.
    pub output: String,
    /// The nodes that compute it from the input, in graph order.
    pub nodes: Vec<&'a NodeProto>,
    /// Initializers and the outputs of `Constant` nodes, by name.
    pub constants: HashMap<String, Constant>,
    /// The opset version of the default (`ai.onnx`) domain.
    pub opset: i64,
}

/// The default domain's opset version.
pub fn opset(model: &ModelProto) -> i64 {
    model
        .opset_import
        .iter()
        .find(|o| matches!(o.domain.as_deref(), None | Some("") | Some("ai.onnx")))
        .and_then(|o| o.version)
        .unwrap_or(1)
}

/// A node's name for messages: its own, else its first output.
pub fn node_name(node: &NodeProto) -> String {
    match node.name.as_deref() {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => node.output.first().cloned().unwrap_or_else(|| "(unnamed)".into()),
    }
}

/// Finds the chain from the graph's one real input to `output` (or its one float output).
pub fn chain<'a>(model: &'a ModelProto, output: Option<&str>) -> Result<Chain<'a>> {
    let graph = model.graph.as_ref().ok_or_else(|| ImportError::Graph("the model has no graph".into()))?;
    let opset = opset(model);
    let mut constants = HashMap::new();
    for t in &graph.initializer {
        let name = t.name.clone().unwrap_or_default();
        constants.insert(name.clone(), tensor::decode(t, &name)?);
    }
    for node in &graph.node {
        if node.op_type.as_deref() == Some("Constant") {
            let value = crate::attrs::tensor(node, "value").ok_or_else(|| unsupported_constant(node, opset))?;
            let name = node.output.first().cloned().unwrap_or_default();
            constants.insert(name.clone(), tensor::decode(value, &name)?);
        }
    }
    let (input, input_shape) = graph_input(graph, &constants)?;
    let output = pick_output(graph, output)?;
    let nodes = path(graph, &input, &output, &constants)?;
    Ok(Chain { input, input_shape, output, nodes, constants, opset })
}

fn unsupported_constant(node: &NodeProto, opset: i64) -> ImportError {
    ImportError::Unsupported {
        op: "Constant".into(),
        node: node_name(node),
        opset,
        why: format!("only a tensor `value` is read (attributes: {:?})", crate::attrs::names(node)),
    }
}

/// The one graph input that is not an initializer, and its per-sample shape.
fn graph_input(graph: &GraphProto, constants: &HashMap<String, Constant>) -> Result<(String, Vec<usize>)> {
    let inputs: Vec<_> =
        graph.input.iter().filter(|i| !constants.contains_key(i.name.as_deref().unwrap_or(""))).collect();
    let [input] = inputs.as_slice() else {
        let names: Vec<_> = inputs.iter().map(|i| i.name.clone().unwrap_or_default()).collect();
        return Err(ImportError::Graph(format!("the graph must have one input, it has {}: {names:?}", names.len())));
    };
    let name = input.name.clone().unwrap_or_default();
    let tensor = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => t,
        _ => return Err(ImportError::Graph(format!("input {name} is not a tensor"))),
    };
    if tensor.elem_type != Some(DataType::Float as i32) {
        return Err(ImportError::Graph(format!(
            "input {name} has element type {:?}: the importer reads float inputs",
            tensor.elem_type.and_then(|t| DataType::try_from(t).ok()).map(|t| t.as_str_name())
        )));
    }
    let dims = tensor.shape.as_ref().map(|s| s.dim.as_slice()).unwrap_or(&[]);
    use crate::proto::tensor_shape_proto::dimension::Value as Dim;
    let values: Vec<Option<i64>> = dims
        .iter()
        .map(|d| match d.value {
            Some(Dim::DimValue(v)) => Some(v),
            _ => None,
        })
        .collect();
    // The first axis is the batch: symbolic, or a fixed 1 (an export traced with one example).
    let per_sample = match values.split_first() {
        Some((batch, rest)) if matches!(batch, None | Some(1)) && !rest.is_empty() => rest,
        _ => {
            return Err(ImportError::Graph(format!(
                "input {name} must be [batch, ...] with a symbolic or unit batch axis, it is {values:?}"
            )));
        }
    };
    let shape = per_sample
        .iter()
        .map(|d| match d {
            Some(v) if *v > 0 && *v <= 1 << 20 => Ok(*v as usize),
            other => Err(ImportError::Graph(format!(
                "input {name} has a per-sample axis {other:?}: every axis after the batch must be a fixed size"
            ))),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((name, shape))
}

/// The output named `wanted`, else the graph's only float output.
fn pick_output(graph: &GraphProto, wanted: Option<&str>) -> Result<String> {
    let names: Vec<String> = graph.output.iter().map(|o| o.name.clone().unwrap_or_default()).collect();
    if let Some(w) = wanted {
        return names
            .iter()
            .find(|n| *n == w)
            .cloned()
            .ok_or_else(|| ImportError::Graph(format!("no graph output named {w}; the outputs are {names:?}")));
    }
    let float: Vec<String> = graph
        .output
        .iter()
        .filter(|o| match o.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            Some(type_proto::Value::TensorType(t)) => t.elem_type == Some(DataType::Float as i32),
            _ => false,
        })
        .map(|o| o.name.clone().unwrap_or_default())
        .collect();
    match float.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(ImportError::Graph(format!("the graph has no float output (outputs: {names:?})"))),
        _ => Err(ImportError::Graph(format!("the graph has several float outputs {float:?}: name the one to take"))),
    }
}

/// The nodes `output` depends on, in graph order, checking that they read the input.
fn path<'a>(
    graph: &'a GraphProto,
    input: &str,
    output: &str,
    constants: &HashMap<String, Constant>,
) -> Result<Vec<&'a NodeProto>> {
    let producer: HashMap<&str, usize> =
        graph.node.iter().enumerate().flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i))).collect();
    let mut needed = HashSet::new();
    let mut stack = vec![output.to_string()];
    let mut reaches_input = false;
    while let Some(name) = stack.pop() {
        if name == input {
            reaches_input = true;
            continue;
        }
        if name.is_empty() || constants.contains_key(&name) {
            continue;
        }
        let Some(&i) = producer.get(name.as_str()) else {
            return Err(ImportError::Graph(format!("tensor {name} is read but neither computed nor given")));
        };
        if needed.insert(i) {
            stack.extend(graph.node[i].input.iter().cloned());
        }
        if needed.len() > graph.node.len() {
            break;
        }
    }
    if !reaches_input {
        return Err(ImportError::Graph(format!("output {output} does not depend on the input {input}")));
    }
    let mut order: Vec<usize> = needed.into_iter().collect();
    order.sort_unstable();
    Ok(order.into_iter().map(|i| &graph.node[i]).collect())
}
