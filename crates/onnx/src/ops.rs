//! The operators the importer translates, one arm each, onto a [`Builder`].

use more_nn::{ElementFunction, LayerSpec};
use ndarray::{ArrayD, Ix2, IxDyn};

use crate::attrs;
use crate::builder::{Builder, per_channel, reshaped};
use crate::error::{ImportError, Result};
use crate::graph::{Chain, node_name};
use crate::proto::NodeProto;
use crate::tensor::Constant;

/// What the walk noticed besides the layers: operators folded or dropped, for the import report.
#[derive(Debug, Default, Clone)]
pub struct Notes {
    /// E.g. `"BatchNormalization bn1 folded into the layer before it"`.
    pub folded: Vec<String>,
    /// Operators that do nothing at inference (`Identity`, `Dropout`, a `Cast` to float, a `Flatten` of a
    /// value that is already flat).
    pub dropped: Vec<String>,
    /// The operator types met on the path, in order of first appearance.
    pub operators: Vec<String>,
    /// The network ends with a softmax (kept, or dropped on request).
    pub softmax: bool,
}

/// Walks the chain, translating each operator; `drop_softmax` leaves a final softmax out.
pub fn translate(chain: &Chain<'_>, drop_softmax: bool) -> Result<(Vec<usize>, Builder, Notes)> {
    let mut input_shape = chain.input_shape.clone();
    let mut b = Builder::new(input_shape.clone());
    let mut notes = Notes::default();
    let mut current = chain.input.clone();
    let mut ended = false;
    for node in &chain.nodes {
        let op = node.op_type.clone().unwrap_or_default();
        if !notes.operators.contains(&op) {
            notes.operators.push(op.clone());
        }
        if op == "Constant" {
            continue;
        }
        let ctx = Ctx { node, op: &op, opset: chain.opset };
        if !matches!(node.domain.as_deref(), None | Some("") | Some("ai.onnx")) {
            return Err(ctx.unsupported(format!(
                "domain {} is not the standard operator set",
                node.domain.clone().unwrap_or_default()
            )));
        }
        // Every input is the value computed so far, a constant, or absent (an optional input left empty).
        for name in &node.input {
            if !name.is_empty() && *name != current && !chain.constants.contains_key(name) {
                return Err(ImportError::Graph(format!(
                    "node {} ({op}) reads {name} beside {current}: only sequential networks import (one \
                     computed value flows from the input to the output)",
                    node_name(node)
                )));
            }
        }
        if !node.input.contains(&current) {
            return Err(ctx.unsupported("it does not read the network's running value".into()));
        }
        if ended && !matches!(op.as_str(), "Identity" | "Dropout" | "Cast") {
            return Err(ctx.unsupported("only no-op operators may follow the final softmax".into()));
        }
        let konst = |i: usize| -> Option<&Constant> {
            node.input.get(i).filter(|n| !n.is_empty()).and_then(|n| chain.constants.get(n))
        };
        let other = || -> Result<&Constant> {
            node.input
                .iter()
                .find(|n| **n != current)
                .and_then(|n| chain.constants.get(n))
                .ok_or_else(|| ctx.unsupported("both operands are the running value".into()))
        };
        match op.as_str() {
            "Identity" | "Dropout" => notes.dropped.push(format!("{op} {}", node_name(node))),
            "Cast" => {
                if attrs::int(node, "to", 1) != crate::proto::tensor_proto::DataType::Float as i64 {
                    return Err(ctx.unsupported("a cast to a type other than float".into()));
                }
                notes.dropped.push(format!("{op} {}", node_name(node)));
            }
            "Relu" => b.activation(ElementFunction::Relu).map_err(|e| ctx.unsupported(e))?,
            "Sigmoid" => b.activation(ElementFunction::Sigmoid).map_err(|e| ctx.unsupported(e))?,
            "Tanh" => b.activation(ElementFunction::Tanh).map_err(|e| ctx.unsupported(e))?,
            "Mul" if node.input.iter().all(|n| *n == current) => {
                b.activation(ElementFunction::Square).map_err(|e| ctx.unsupported(e))?
            }
            "Pow" => {
                let e = other()?.real();
                if e.len() != 1 || e.iter().next() != Some(&2.0) {
                    return Err(ctx.unsupported("only the exponent 2 (square) is translated".into()));
                }
                b.activation(ElementFunction::Square).map_err(|e| ctx.unsupported(e))?
            }
            "Mul" | "Div" => {
                let c = other()?.real();
                if op == "Div" && node.input.first() != Some(&current) {
                    return Err(ctx.unsupported("a constant divided by the running value".into()));
                }
                let invert = |v: f32| if op == "Div" { 1.0 / v } else { v };
                if c.len() == 1 {
                    b.scale(invert(*c.iter().next().expect("one value")));
                } else {
                    let s = per_channel(&c, &b.shape)
                        .ok_or_else(|| ctx.unsupported(format!("a constant of shape {:?}", c.shape())))?;
                    let s: Vec<f32> = s.into_iter().map(invert).collect();
                    b.affine(Some(&s), None).map_err(|e| ctx.unsupported(e))?;
                }
                notes.folded.push(format!("{op} {} folded into the neighbouring linear layer", node_name(node)));
            }
            "Add" | "Sub" => {
                if op == "Sub" && node.input.first() != Some(&current) {
                    return Err(ctx.unsupported("a constant minus the running value".into()));
                }
                let c = other()?.real();
                let t = per_channel(&c, &b.shape)
                    .ok_or_else(|| ctx.unsupported(format!("a constant of shape {:?}", c.shape())))?;
                let t: Vec<f32> = if op == "Sub" { t.into_iter().map(|v| -v).collect() } else { t };
                b.affine(None, Some(&t)).map_err(|e| ctx.unsupported(e))?;
                notes.folded.push(format!("{op} {} folded into the bias before it", node_name(node)));
            }
            "Gemm" => gemm(&ctx, &mut b, konst(1), konst(2), &current, node)?,
            "MatMul" => {
                let w = konst(1).filter(|_| node.input.first() == Some(&current));
                let w = w.ok_or_else(|| ctx.unsupported("the weight must be a constant second operand".into()))?;
                dense(&ctx, &mut b, w.real(), None)?
            }
            "Conv" => conv(&ctx, &mut b, konst(1), konst(2))?,
            "BatchNormalization" => {
                let get = |i: usize, what: &str| -> Result<Vec<f32>> {
                    let c = konst(i).ok_or_else(|| ctx.unsupported(format!("{what} is not a constant")))?;
                    let v: Vec<f32> = c.real().iter().copied().collect();
                    if v.len() != b.channels() {
                        return Err(ctx.unsupported(format!(
                            "{what} has {} values for {} channels",
                            v.len(),
                            b.channels()
                        )));
                    }
                    Ok(v)
                };
                let (gamma, beta, mean, var) =
                    (get(1, "scale")?, get(2, "bias")?, get(3, "mean")?, get(4, "variance")?);
                let eps = attrs::float(node, "epsilon", 1e-5);
                if node.output.iter().skip(1).any(|o| !o.is_empty()) {
                    return Err(ctx.unsupported("training mode (running statistics as outputs)".into()));
                }
                let scale: Vec<f32> = gamma.iter().zip(&var).map(|(g, v)| g / (v + eps).sqrt()).collect();
                let shift: Vec<f32> = beta.iter().zip(&mean).zip(&scale).map(|((bt, m), s)| bt - m * s).collect();
                b.affine(Some(&scale), Some(&shift)).map_err(|e| ctx.unsupported(e))?;
                notes.folded.push(format!("BatchNormalization {} folded into the layer before it", node_name(node)));
            }
            "MaxPool" | "AveragePool" => pool(&ctx, &mut b, node)?,
            "GlobalAveragePool" => {
                let [c, _, _] = b.shape[..] else {
                    return Err(ctx.unsupported(format!("an input of shape {:?}", b.shape)));
                };
                // more-nn's global pooling yields [C] where ONNX keeps [C, 1, 1]; a Flatten after it is a no-op.
                b.plain(LayerSpec::GlobalAvgPool, vec![c], true).map_err(|e| ctx.unsupported(e))?;
            }
            "Flatten" => {
                let axis = attrs::int(node, "axis", 1);
                if axis != 1 {
                    return Err(ctx.unsupported(format!("axis {axis} (only 1: keep the batch axis)")));
                }
                flatten(&ctx, &mut b, &mut notes)?;
            }
            "Reshape" => {
                let target = konst(1).and_then(|c| c.ints().map(<[i64]>::to_vec)).ok_or_else(|| {
                    ctx.unsupported("a shape computed at run time (export with a constant shape)".into())
                })?;
                let count: usize = b.shape.iter().product();
                let flat = target.len() == 2
                    && (-1..=1).contains(&target[0])
                    && (target[1] == -1 || target[1] == count as i64)
                    && !(target[0] == -1 && target[1] == -1);
                if flat {
                    flatten(&ctx, &mut b, &mut notes)?;
                } else if b.layers.is_empty() && target.first().is_some_and(|d| (-1..=1).contains(d)) {
                    // A reshape of the raw input is the input's shape.
                    let shape: Vec<usize> = target[1..].iter().map(|&d| d.max(0) as usize).collect();
                    if shape.iter().product::<usize>() != count || shape.contains(&0) {
                        return Err(ctx.unsupported(format!("shape {target:?} for an input of {count} values")));
                    }
                    input_shape = shape.clone();
                    b.shape = shape;
                    notes.dropped.push(format!("{op} {} (the input's shape)", node_name(node)));
                } else {
                    return Err(ctx.unsupported(format!("shape {target:?}: only to [batch, -1] (flatten)")));
                }
            }
            "Softmax" => {
                let axis = attrs::int(node, "axis", if chain.opset >= 13 { -1 } else { 1 });
                if b.shape.len() != 1 || !matches!(axis, -1 | 1) {
                    return Err(ctx.unsupported(format!("axis {axis} on a value of shape {:?}", b.shape)));
                }
                notes.softmax = true;
                ended = true;
                if drop_softmax {
                    notes.dropped.push(format!("{op} {} (asked to)", node_name(node)));
                } else {
                    let shape = b.shape.clone();
                    b.plain(LayerSpec::Softmax, shape, false).map_err(|e| ctx.unsupported(e))?;
                }
            }
            _ => return Err(ctx.unsupported("the importer does not translate this operator".into())),
        }
        current = node.output.first().cloned().unwrap_or_default();
    }
    if current != chain.output {
        return Err(ImportError::Graph(format!("the walk ended at {current}, not at the output {}", chain.output)));
    }
    Ok((input_shape, b, notes))
}

/// The node being translated, for error messages.
struct Ctx<'a> {
    node: &'a NodeProto,
    op: &'a str,
    opset: i64,
}

impl Ctx<'_> {
    fn unsupported(&self, why: String) -> ImportError {
        ImportError::Unsupported { op: self.op.to_string(), node: node_name(self.node), opset: self.opset, why }
    }
}

fn flatten(ctx: &Ctx<'_>, b: &mut Builder, notes: &mut Notes) -> Result<()> {
    if b.shape.len() == 1 {
        notes.dropped.push(format!("{} {} (already flat)", ctx.op, node_name(ctx.node)));
        return Ok(());
    }
    let n = b.shape.iter().product();
    b.plain(LayerSpec::Flatten, vec![n], true).map_err(|e| ctx.unsupported(e))
}

/// A dense layer `x·w + bias` from `w` of shape `[inputs, outputs]`.
fn dense(ctx: &Ctx<'_>, b: &mut Builder, w: ArrayD<f32>, bias: Option<Vec<f32>>) -> Result<()> {
    let shape = w.shape().to_vec();
    let w2 = w.into_dimensionality::<Ix2>().map_err(|_| ctx.unsupported(format!("a weight of shape {shape:?}")))?;
    let (inputs, outputs) = w2.dim();
    if b.shape != [inputs] {
        return Err(ctx.unsupported(format!("a [{inputs}, {outputs}] weight on a value of shape {:?}", b.shape)));
    }
    let bias = bias.unwrap_or_else(|| vec![0.0; outputs]);
    if bias.len() != outputs {
        return Err(ctx.unsupported(format!("{} bias values for {outputs} outputs", bias.len())));
    }
    let bias = ArrayD::from_shape_vec(IxDyn(&[outputs]), bias).expect("length checked");
    b.linear(LayerSpec::Dense { inputs, outputs }, w2.into_dyn(), bias, vec![outputs]);
    Ok(())
}

/// `Y = alpha · A' · B' + beta · C` with A the running value.
fn gemm(
    ctx: &Ctx<'_>,
    b: &mut Builder,
    w: Option<&Constant>,
    c: Option<&Constant>,
    current: &str,
    node: &NodeProto,
) -> Result<()> {
    if node.input.first().map(String::as_str) != Some(current) || attrs::int(node, "transA", 0) != 0 {
        return Err(ctx.unsupported("the running value must be A, not transposed".into()));
    }
    let w = w.ok_or_else(|| ctx.unsupported("B must be a constant".into()))?.real();
    let w = w.into_dimensionality::<Ix2>().map_err(|e| ctx.unsupported(format!("B: {e}")))?;
    let w = if attrs::int(node, "transB", 0) != 0 { w.reversed_axes().as_standard_layout().into_owned() } else { w };
    let alpha = attrs::float(node, "alpha", 1.0);
    let beta = attrs::float(node, "beta", 1.0);
    let outputs = w.dim().1;
    let bias = match c {
        None => None,
        Some(c) => {
            let c = c.real();
            let v = per_channel(&c, &[outputs])
                .ok_or_else(|| ctx.unsupported(format!("C of shape {:?} for {outputs} outputs", c.shape())))?;
            Some(v.into_iter().map(|x| x * beta).collect())
        }
    };
    dense(ctx, b, (w * alpha).into_dyn(), bias)
}

fn conv(ctx: &Ctx<'_>, b: &mut Builder, w: Option<&Constant>, bias: Option<&Constant>) -> Result<()> {
    let node = ctx.node;
    let w = w.ok_or_else(|| ctx.unsupported("W must be a constant".into()))?.real();
    let &[out_c, in_c, kh, kw] = w.shape() else {
        return Err(ctx.unsupported(format!("a 2-D convolution, not a weight of shape {:?}", w.shape())));
    };
    if attrs::int(node, "group", 1) != 1 {
        return Err(ctx.unsupported("groups other than 1".into()));
    }
    if attrs::ints(node, "dilations").is_some_and(|d| d.iter().any(|&x| x != 1)) {
        return Err(ctx.unsupported("dilations other than 1".into()));
    }
    let strides = attrs::ints(node, "strides").unwrap_or_else(|| vec![1, 1]);
    let [sh, sw] = strides[..] else { return Err(ctx.unsupported(format!("strides {strides:?}"))) };
    if sh != sw || sh < 1 {
        return Err(ctx.unsupported(format!("strides {strides:?} (equal strides on both axes only)")));
    }
    let padding = padding(ctx, node, [kh, kw], sh as usize)?;
    let [c, h, wd] = b.shape[..] else {
        return Err(ctx.unsupported(format!("an input of shape {:?} (a convolution reads [C, H, W])", b.shape)));
    };
    if c != in_c {
        return Err(ctx.unsupported(format!("a weight for {in_c} input channels on {c} channels")));
    }
    let stride = sh as usize;
    let (hp, wp) = (h + 2 * padding, wd + 2 * padding);
    if hp < kh || wp < kw {
        return Err(ctx.unsupported(format!("a {kh}x{kw} kernel on a {h}x{wd} input")));
    }
    let shape = vec![out_c, (hp - kh) / stride + 1, (wp - kw) / stride + 1];
    let bias = match bias {
        Some(bc) => reshaped(bc.real(), &[out_c]).ok_or_else(|| ctx.unsupported("a bias not of length M".into()))?,
        None => ArrayD::zeros(IxDyn(&[out_c])),
    };
    let spec = LayerSpec::Conv2d { in_channels: in_c, out_channels: out_c, kernel: [kh, kw], stride, padding };
    b.linear(spec, w, bias, shape);
    Ok(())
}

/// The one symmetric padding more-nn's windows take, from `pads` or `auto_pad`.
fn padding(ctx: &Ctx<'_>, node: &NodeProto, kernel: [usize; 2], stride: usize) -> Result<usize> {
    match attrs::string(node, "auto_pad").as_deref() {
        None | Some("NOTSET") | Some("") => {}
        Some("VALID") => return Ok(0),
        Some(same @ ("SAME_UPPER" | "SAME_LOWER")) => {
            if stride == 1 && kernel[0] == kernel[1] && kernel[0] % 2 == 1 {
                return Ok((kernel[0] - 1) / 2);
            }
            return Err(ctx.unsupported(format!("auto_pad {same} with stride {stride} and kernel {kernel:?}")));
        }
        Some(other) => return Err(ctx.unsupported(format!("auto_pad {other}"))),
    }
    let pads = attrs::ints(node, "pads").unwrap_or_else(|| vec![0; 4]);
    match pads[..] {
        [p, q, r, s] if p == q && q == r && r == s && p >= 0 => Ok(p as usize),
        _ => Err(ctx.unsupported(format!("pads {pads:?} (the same padding on every side only)"))),
    }
}

fn pool(ctx: &Ctx<'_>, b: &mut Builder, node: &NodeProto) -> Result<()> {
    let kernel = attrs::ints(node, "kernel_shape").unwrap_or_default();
    let [k, k2] = kernel[..] else { return Err(ctx.unsupported(format!("kernel_shape {kernel:?}"))) };
    let strides = attrs::ints(node, "strides").unwrap_or_else(|| vec![1, 1]);
    let [s, s2] = strides[..] else { return Err(ctx.unsupported(format!("strides {strides:?}"))) };
    if k != k2 || s != s2 || k < 1 || s < 1 {
        return Err(ctx.unsupported(format!("kernel {kernel:?}, strides {strides:?} (square windows only)")));
    }
    if padding(ctx, node, [k as usize; 2], s as usize)? != 0 {
        return Err(ctx.unsupported("padding (pooling windows inside the input only)".into()));
    }
    if attrs::ints(node, "dilations").is_some_and(|d| d.iter().any(|&x| x != 1)) {
        return Err(ctx.unsupported("dilations other than 1".into()));
    }
    if node.output.iter().skip(1).any(|o| !o.is_empty()) {
        return Err(ctx.unsupported("the indices output".into()));
    }
    let [c, h, w] = b.shape[..] else {
        return Err(ctx.unsupported(format!("an input of shape {:?} (pooling reads [C, H, W])", b.shape)));
    };
    let (k, s) = (k as usize, s as usize);
    if h < k || w < k {
        return Err(ctx.unsupported(format!("a {k}x{k} window on a {h}x{w} input")));
    }
    if attrs::int(node, "ceil_mode", 0) != 0 && ((h - k) % s != 0 || (w - k) % s != 0) {
        return Err(ctx.unsupported("ceil_mode with windows that overhang the input".into()));
    }
    let shape = vec![c, (h - k) / s + 1, (w - k) / s + 1];
    let spec = if ctx.op == "MaxPool" {
        LayerSpec::MaxPool { size: k, stride: s }
    } else {
        LayerSpec::AvgPool { size: k, stride: s }
    };
    b.plain(spec, shape, true).map_err(|e| ctx.unsupported(e))
}
