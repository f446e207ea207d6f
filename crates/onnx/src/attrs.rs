//! Reading a node's attributes by name, with ONNX's defaults supplied by the caller.

use crate::proto::{AttributeProto, NodeProto};

/// The attribute `name` of `node`, if present.
fn find<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name.as_deref() == Some(name))
}

/// An integer attribute, or `default`.
pub fn int(node: &NodeProto, name: &str, default: i64) -> i64 {
    find(node, name).and_then(|a| a.i).unwrap_or(default)
}

/// A float attribute, or `default`.
pub fn float(node: &NodeProto, name: &str, default: f32) -> f32 {
    find(node, name).and_then(|a| a.f).unwrap_or(default)
}

/// An integer-list attribute, or `None` when absent.
pub fn ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    find(node, name).map(|a| a.ints.clone())
}

/// A string attribute (bytes read as UTF-8, lossily), or `None`.
pub fn string(node: &NodeProto, name: &str) -> Option<String> {
    find(node, name).and_then(|a| a.s.as_ref()).map(|s| String::from_utf8_lossy(s).into_owned())
}

/// The attribute named `name` as a tensor (the `Constant` node's `value`).
pub fn tensor<'a>(node: &'a NodeProto, name: &str) -> Option<&'a crate::proto::TensorProto> {
    find(node, name).and_then(|a| a.t.as_ref())
}

/// Every attribute name the node carries (for "unsupported attribute" messages).
pub fn names(node: &NodeProto) -> Vec<&str> {
    node.attribute.iter().filter_map(|a| a.name.as_deref()).collect()
}
